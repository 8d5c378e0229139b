import { defineConfig } from 'vitest/config';
import { faceModels } from './build/face-models.mjs';

export default defineConfig({
  base: './',
  plugins: [faceModels()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2020',
    sourcemap: false,
    // face-api with TensorFlow.js is one 1.4 MB chunk, loaded only when the user picks a photo.
    chunkSizeWarningLimit: 1600,
  },
  server: {
    // `npm run dev` against a running talkstream server (default port 7860)
    proxy: {
      '/session': { target: 'ws://127.0.0.1:7860', ws: true },
      '/hls': 'http://127.0.0.1:7860',
    },
  },
  test: {
    include: ['tests/unit/**/*.test.ts'],
    environment: 'node',
  },
});
