//! `corelog-bench compare A.json B.json`: per scenario, each figure of A and B
//! and the ratio B/A, side by side.

use std::path::Path;

use anyhow::{Context as _, Result};

use crate::report::{num, si};
use crate::{Outcome, Results};

fn load(path: &Path) -> Result<Results> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {} (a corelog-bench results.json?)", path.display()))
}

type Metric = (&'static str, fn(&Outcome) -> Option<f64>, fn(Option<f64>) -> String, bool);

const METRICS: &[Metric] = &[
    ("produce msgs/s", |o| o.produce_msgs_per_s, si, true),
    ("produce MB/s", |o| o.produce_mb_per_s, |v| num(v, 1), true),
    ("consume msgs/s", |o| o.consume_msgs_per_s, si, true),
    ("produce p50 ms", |o| o.ack_ms("p50"), |v| num(v, 2), false),
    ("produce p99 ms", |o| o.ack_ms("p99"), |v| num(v, 2), false),
    ("produce p99.9 ms", |o| o.ack_ms("p99.9"), |v| num(v, 2), false),
    ("e2e p99 ms", |o| o.e2e_ms("p99"), |v| num(v, 2), false),
    ("CPU s/M msgs", |o| o.broker_cpu_s_per_million, |v| num(v, 2), false),
    ("peak RSS MiB", |o| o.rss_mib(), |v| num(v, 0), false),
];

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if a > 0.0 => Some(b / a),
        _ => None,
    }
}

pub fn compare(a_path: &Path, b_path: &Path) -> Result<()> {
    let (a, b) = (load(a_path)?, load(b_path)?);
    println!("A: {} ({}, {})", a_path.display(), a.machine.date_utc, a.command_line);
    println!("B: {} ({}, {})", b_path.display(), b.machine.date_utc, b.command_line);
    println!("B/A > 1 is better for throughput; < 1 is better for latency, CPU and RSS.\n");
    let mut names: Vec<&str> = a.scenarios.iter().map(|o| o.name.as_str()).collect();
    for o in &b.scenarios {
        if !names.contains(&o.name.as_str()) {
            names.push(&o.name);
        }
    }
    let mut throughput_ratios = Vec::new();
    for name in names {
        let oa = a.scenarios.iter().find(|o| o.name == name);
        let ob = b.scenarios.iter().find(|o| o.name == name);
        let status = match (oa, ob) {
            (Some(_), None) => " (only in A)",
            (None, Some(_)) => " (only in B)",
            (Some(x), Some(y)) if !x.ok || !y.ok => " (failed in a run)",
            _ => "",
        };
        println!("{name}{status}");
        println!("  {:<18} {:>10} {:>10} {:>8}", "", "A", "B", "B/A");
        for (label, get, fmt, _) in METRICS {
            let va = oa.and_then(get);
            let vb = ob.and_then(get);
            if va.is_none() && vb.is_none() {
                continue;
            }
            let r = ratio(va, vb);
            if *label == "produce msgs/s" && oa.map(|o| o.rate_msgs_per_s.is_none()).unwrap_or(false) {
                throughput_ratios.extend(r);
            }
            let rs = r.map(|r| format!("{r:.2}x")).unwrap_or_else(|| "–".into());
            println!("  {label:<18} {:>10} {:>10} {rs:>8}", fmt(va), fmt(vb));
        }
        println!();
    }
    if !throughput_ratios.is_empty() {
        let g = (throughput_ratios.iter().map(|r| r.ln()).sum::<f64>() / throughput_ratios.len() as f64).exp();
        println!(
            "geometric mean of produce msgs/s B/A over {} throughput scenario(s): {g:.2}x",
            throughput_ratios.len()
        );
    }
    Ok(())
}
