import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

// The build lands inside the Python package, so a wheel carries the viewer and a user needs no
// Node.js. One JS and one CSS file with fixed names and relative URLs: the server serves them
// under any prefix, and the offline export can inline them into a single HTML file.
export default defineConfig({
  plugins: [svelte()],
  base: './',
  build: {
    outDir: '../src/neurocarta/viewer/static',
    emptyOutDir: true,
    cssCodeSplit: false,
    assetsInlineLimit: 100_000_000,
    chunkSizeWarningLimit: 2000,
    rollupOptions: {
      output: {
        entryFileNames: 'assets/app.js',
        assetFileNames: 'assets/app[extname]',
        codeSplitting: false,
      },
    },
  },
  server: {
    // `npm run dev` proxies the API to a running `neurocarta serve` (default port).
    proxy: { '/api': 'http://127.0.0.1:8765' },
    // data.ts imports the API paths from the Python package's routes.json, outside web/.
    fs: { allow: ['.', '../src/neurocarta/viewer/routes.json'] },
  },
});
