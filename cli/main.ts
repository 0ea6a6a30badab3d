#!/usr/bin/env node
/** Placeholder for the `tablecache` CLI (packaging created it so the build runs; replace freely). */
export {};
