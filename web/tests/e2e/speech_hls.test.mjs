// The avatar speaks, played over HLS (hls.js): see speech_suite.mjs.
import { speechSuite } from './speech_suite.mjs';

speechSuite('hls');
