import { defineConfig } from 'tsup';

/** Every public entry point, keyed by its path under dist/ (without extension). */
export const entries = {
  index: 'src/index.ts',
  drizzle: 'adapters/drizzle/index.ts',
  redis: 'stores/redis.ts',
  memory: 'stores/memory.ts',
  'cli/main': 'cli/main.ts',
};

// One config for all entries with splitting on for ESM and CJS alike, so the core (and its
// CacheError class) lives in a single shared chunk that every subpath imports.
export default defineConfig({
  entry: entries,
  format: ['esm', 'cjs'],
  target: 'node20',
  platform: 'node',
  splitting: true,
  dts: true,
  sourcemap: true,
  clean: true,
  tsconfig: 'tsconfig.build.json',
  outDir: 'dist',
  // Drivers are the application's (optional peers): loaded at run time, never bundled.
  external: ['pg', 'postgres', '@electric-sql/pglite', 'tsx'],
});
