import { defineConfig } from 'vite';
import vue from '@vitejs/plugin-vue';

// The build output, web/dist, is committed and embedded into the server binary by
// crates/onair-web; CI rebuilds it and fails on any difference, so nothing here may depend on
// the clock or the machine. Every file but index.html carries a content hash in its name,
// which is what lets the server mark them immutable.
export default defineConfig({
  plugins: [vue()],
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    target: 'es2020',
    sourcemap: false,
    // mpegts.js and hls.js are loaded only on the pages that play video.
    chunkSizeWarningLimit: 700,
  },
  server: {
    // `npm run dev` against a server on the default port.
    proxy: {
      '/api': { target: 'http://127.0.0.1:8080', ws: true },
      '/live': { target: 'http://127.0.0.1:8080', ws: true },
      '/replays': {
        target: 'http://127.0.0.1:8080',
        bypass: (req) => (/\/replays\/\d+\/(index\.m3u8|\d+\.ts)$/.test(req.url ?? '') ? null : req.url),
      },
    },
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
