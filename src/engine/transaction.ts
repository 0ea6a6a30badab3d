/** A row write-through wants to publish once the transaction commits. */
export interface DeferredRowWrite {
  /** Table id. */
  table: string;
  /** Encoded primary key. */
  pk: string;
  /** The committed row, or undefined to evict the row entry. */
  row: Record<string, unknown> | undefined;
}

/**
 * What one transaction (or savepoint) did to the cache's view of the data, so that it can be
 * published after the outermost commit and dropped on rollback. Reads inside a transaction never
 * touch the shared cache: they may see uncommitted data.
 */
export class TransactionFrame {
  /** Tables whose query entries must be invalidated at commit. */
  readonly tables = new Set<string>();
  /** Tables whose row entries must be invalidated at commit (row set unknown). */
  readonly wholeTables = new Set<string>();
  /** The whole namespace must be invalidated at commit (a write whose tables are unknown). */
  everything = false;
  /** Row entries to refresh or evict at commit. */
  readonly rows: DeferredRowWrite[] = [];

  constructor(readonly parent: TransactionFrame | undefined) {}

  /** The outermost transaction of this frame. */
  get root(): TransactionFrame {
    let frame: TransactionFrame = this;
    while (frame.parent) frame = frame.parent;
    return frame;
  }

  /** A savepoint committed: its effects join the parent's. */
  mergeIntoParent(): void {
    if (!this.parent) return;
    this.copyInvalidationsTo(this.parent);
    this.parent.rows.push(...this.rows);
  }

  /**
   * A savepoint rolled back: its writes are undone, but evicting is always safe while publishing
   * a value that was never committed is not, so its rows become evictions in the parent.
   */
  discardIntoParent(): void {
    if (!this.parent) return;
    this.copyInvalidationsTo(this.parent);
    for (const row of this.rows) this.parent.rows.push({ ...row, row: undefined });
  }

  private copyInvalidationsTo(target: TransactionFrame): void {
    for (const t of this.tables) target.tables.add(t);
    for (const t of this.wholeTables) target.wholeTables.add(t);
    target.everything ||= this.everything;
  }
}
