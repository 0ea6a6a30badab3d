import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** The repository root (this file lives in test/package/). */
export const repoRoot = resolve(import.meta.dirname, '../..');

/** A freshly built copy of the package plus a consumer project that depends on it. */
export interface PackageFixture {
  /** Folder holding package.json and dist/, like an unpacked tarball. */
  pkgDir: string;
  /** Folder of a project whose node_modules/tablecache links to `pkgDir`. */
  consumerDir: string;
  /** Removes everything. */
  dispose: () => void;
}

/**
 * Builds the package with the repo's tsup config into a temp folder (never touching dist/,
 * so it cannot be stale or raced) and wires up a consumer project around it.
 */
export function buildPackageFixture(): PackageFixture {
  const root = mkdtempSync(join(tmpdir(), 'tablecache-pkg-'));
  const pkgDir = join(root, 'tablecache');
  const consumerDir = join(root, 'consumer');
  mkdirSync(pkgDir);
  mkdirSync(join(consumerDir, 'node_modules'), { recursive: true });

  try {
    execFileSync('npx', ['tsup', '--out-dir', join(pkgDir, 'dist'), '--silent'], { cwd: repoRoot, stdio: 'pipe' });
  } catch (error) {
    rmSync(root, { recursive: true, force: true });
    throw error;
  }
  copyFileSync(join(repoRoot, 'package.json'), join(pkgDir, 'package.json'));
  // The built code resolves its own dependencies (yaml, ioredis, drizzle-orm...) from here.
  symlinkSync(join(repoRoot, 'node_modules'), join(pkgDir, 'node_modules'), 'dir');
  symlinkSync(pkgDir, join(consumerDir, 'node_modules', 'tablecache'), 'dir');
  writeFileSync(join(consumerDir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));

  return { pkgDir, consumerDir, dispose: () => rmSync(root, { recursive: true, force: true }) };
}
