// The avatar speaks, played over WebRTC (the page's default transport): see speech_suite.mjs.
import { speechSuite } from './speech_suite.mjs';

speechSuite('webrtc');
