import type { Plugin } from 'vite';

export declare const FACE_MODELS: string[];
export declare function faceModels(): Plugin;
