//! The SQL every Oracle sink sends, built from the table and its columns.

/// The shipped layout's columns, in bind order.
#[cfg(test)]
const COLUMNS: [&str; 5] = [
    "timestamp",
    "plc_code",
    "tag_address",
    "tag_value",
    "quality",
];

/// `INSERT INTO table (c1, c2, ...) VALUES (:1, :2, ...)`.
pub(crate) fn insert_sql(table: &str, columns: &[&str]) -> String {
    let binds: Vec<String> = (1..=columns.len()).map(|i| format!(":{i}")).collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        columns.join(", "),
        binds.join(", ")
    )
}

/// The least-privilege probe: an INSERT of no rows into the writer's columns, rolled back
/// after. Oracle checks the INSERT privilege and every column when it parses it, so it passes
/// for an INSERT-only account and fails (ORA-01031, 00942, 00904) for one that could not
/// write, where `SELECT ... WHERE 1 = 0` would do the opposite. It reads nothing and needs no
/// SELECT privilege on the table.
pub(crate) fn probe_sql(table: &str, columns: &[&str]) -> String {
    let nulls = vec!["NULL"; columns.len()];
    format!(
        "INSERT INTO {table} ({}) SELECT {} FROM dual WHERE 1 = 0",
        columns.join(", "),
        nulls.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements() {
        assert_eq!(
            insert_sql("SCADA.TAG_VALUES", &COLUMNS),
            "INSERT INTO SCADA.TAG_VALUES (timestamp, plc_code, tag_address, tag_value, quality) \
             VALUES (:1, :2, :3, :4, :5)"
        );
        assert_eq!(
            probe_sql("TAG_VALUES", &COLUMNS),
            "INSERT INTO TAG_VALUES (timestamp, plc_code, tag_address, tag_value, quality) \
             SELECT NULL, NULL, NULL, NULL, NULL FROM dual WHERE 1 = 0"
        );
    }
}
