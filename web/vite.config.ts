import { defineConfig } from 'vitest/config';

// The Rust server serves web/dist at "/", so assets use relative paths.
export default defineConfig({
  base: './',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2020',
    sourcemap: false,
    chunkSizeWarningLimit: 1024,
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
