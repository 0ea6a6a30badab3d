/** A column as the ORM adapter describes it. */
export interface ColumnInfo {
  /** The column's database name. */
  readonly name: string;
  /** The column's SQL type as the ORM knows it, e.g. `integer`, `timestamp with time zone`. */
  readonly type: string;
}

/** A table or view as the ORM adapter describes it; the core's only knowledge of the schema. */
export interface TableInfo {
  /** Identity used in keys and telemetry: `name`, or `schema.name` outside the default schema. */
  readonly id: string;
  /** The database name. */
  readonly name: string;
  /** The database schema, when not the default one. */
  readonly schema?: string | undefined;
  /** Other names a policy may use for it (the schema module's export names). */
  readonly aliases: readonly string[];
  /** Columns in declaration order. */
  readonly columns: readonly ColumnInfo[];
  /** Primary key column names; empty when the table has none. */
  readonly primaryKey: readonly string[];
  /** Tables hold rows; views read other tables. */
  readonly kind: 'table' | 'view';
  /**
   * Ids of tables whose rows the database itself may change when this table's rows change
   * (foreign keys with ON DELETE/UPDATE CASCADE, SET NULL or SET DEFAULT): written together.
   */
  readonly dependents?: readonly string[];
}

/** Everything an adapter tells the core about the schema it wraps. */
export interface Catalog {
  /** Every table and view of the schema. */
  readonly tables: readonly TableInfo[];
}
