//! Column declarations: name, osquery type, options and a one-line description.
//!
//! Types and option bits are osquery's own (osquery `column.h`); osqueryd reads them from the
//! route info an extension broadcasts at registration, so they must match exactly.

/// osquery column types. `Integer` is 32-bit in osqueryd (`sqlite3_result_int`), so byte counts
/// and times are always `BigInt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Integer,
    BigInt,
    UnsignedBigInt,
    Double,
    Blob,
}

impl ColumnType {
    /// The spelling osqueryd expects in route info and SQLite expects in a schema.
    pub fn sql_name(self) -> &'static str {
        match self {
            ColumnType::Text => "TEXT",
            ColumnType::Integer => "INTEGER",
            ColumnType::BigInt => "BIGINT",
            ColumnType::UnsignedBigInt => "UNSIGNED BIGINT",
            ColumnType::Double => "DOUBLE",
            ColumnType::Blob => "BLOB",
        }
    }
}

/// osquery `ColumnOptions` bits. Only the ones that change behaviour for extension tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ColumnOptions(pub u32);

impl ColumnOptions {
    pub const DEFAULT: ColumnOptions = ColumnOptions(0);
    /// Pushdown hint; osqueryd's `--extensions_default_index` already upgrades DEFAULT to INDEX,
    /// so we set it explicitly only on the columns tables really filter on.
    pub const INDEX: ColumnOptions = ColumnOptions(1);
    pub const REQUIRED: ColumnOptions = ColumnOptions(2);
    pub const ADDITIONAL: ColumnOptions = ColumnOptions(4);
    pub const OPTIMIZED: ColumnOptions = ColumnOptions(8);
    /// Not returned by `SELECT *`. Declare `HIDDEN | INDEX` for input columns: osqueryd does not
    /// upgrade a HIDDEN-only column to INDEX, so it would never be pushed down.
    pub const HIDDEN: ColumnOptions = ColumnOptions(16);

    pub const fn union(self, other: ColumnOptions) -> ColumnOptions {
        ColumnOptions(self.0 | other.0)
    }
    pub fn contains(self, other: ColumnOptions) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }
    pub fn names(self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (bit, name) in [
            (Self::INDEX, "index"),
            (Self::REQUIRED, "required"),
            (Self::ADDITIONAL, "additional"),
            (Self::OPTIMIZED, "optimized"),
            (Self::HIDDEN, "hidden"),
        ] {
            if self.contains(bit) {
                out.push(name);
            }
        }
        out
    }
}

impl std::ops::BitOr for ColumnOptions {
    type Output = ColumnOptions;
    fn bitor(self, rhs: ColumnOptions) -> ColumnOptions {
        self.union(rhs)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColumnType,
    pub options: ColumnOptions,
    pub description: &'static str,
}

impl Column {
    pub const fn new(name: &'static str, ty: ColumnType, description: &'static str) -> Column {
        Column {
            name,
            ty,
            options: ColumnOptions::DEFAULT,
            description,
        }
    }
    pub const fn with(mut self, options: ColumnOptions) -> Column {
        self.options = self.options.union(options);
        self
    }
}

/// Shorthands so a table's schema reads as a list: `text("label", "…").index()`.
pub const fn text(name: &'static str, description: &'static str) -> Column {
    Column::new(name, ColumnType::Text, description)
}
pub const fn integer(name: &'static str, description: &'static str) -> Column {
    Column::new(name, ColumnType::Integer, description)
}
pub const fn bigint(name: &'static str, description: &'static str) -> Column {
    Column::new(name, ColumnType::BigInt, description)
}
pub const fn double(name: &'static str, description: &'static str) -> Column {
    Column::new(name, ColumnType::Double, description)
}

impl Column {
    pub const fn index(self) -> Column {
        self.with(ColumnOptions::INDEX)
    }
    pub const fn hidden(self) -> Column {
        self.with(ColumnOptions::HIDDEN)
    }
}
