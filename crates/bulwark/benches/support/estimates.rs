//! Reads a criterion result back, for benches that print themselves beside a peer run by a
//! script.

use std::fs;
use std::path::Path;
use std::time::SystemTime;

/// Mean and median, in milliseconds, of a criterion benchmark measured since `since` (criterion
/// keeps `group/a/b` under `group/a_b`).
pub(crate) fn criterion_ms(group: &str, bench: &str, since: SystemTime) -> Option<(f64, f64)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/criterion")
        .join(group)
        .join(bench.replace('/', "_"))
        .join("new/estimates.json");
    if fs::metadata(&path).ok()?.modified().ok()? < since {
        return None;
    }
    let estimates: serde_json::Value = serde_json::from_slice(&fs::read(&path).ok()?).ok()?;
    let ms = |key: &str| estimates[key]["point_estimate"].as_f64().map(|ns| ns / 1e6);
    Some((ms("mean")?, ms("median")?))
}
