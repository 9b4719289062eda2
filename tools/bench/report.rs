//! report.md: the machine, the command line, the results table and the plots.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result};

use crate::svg;
use crate::{Outcome, Results};

/// "2.31M", "845k", "12.3" — three significant figures; "–" for none.
pub fn si(v: Option<f64>) -> String {
    let Some(v) = v else { return "–".into() };
    if v == 0.0 {
        return "0".into();
    }
    let (x, suffix) = if v.abs() >= 1e9 {
        (v / 1e9, "G")
    } else if v.abs() >= 1e6 {
        (v / 1e6, "M")
    } else if v.abs() >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let digits = if x.abs() >= 100.0 {
        0
    } else if x.abs() >= 10.0 {
        1
    } else {
        2
    };
    format!("{x:.digits$}{suffix}")
}

pub fn num(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(v) => format!("{v:.digits$}"),
        None => "–".into(),
    }
}

/// The median run's rate, and the range over all runs when there were several: "3.21M (2.90M–3.40M)".
fn spread_cell(median: Option<f64>, runs: &[f64]) -> String {
    let min = runs.iter().copied().reduce(f64::min);
    let max = runs.iter().copied().reduce(f64::max);
    match (runs.len(), min, max) {
        (2.., Some(lo), Some(hi)) => format!("{} ({}–{})", si(median), si(Some(lo)), si(Some(hi))),
        _ => si(median),
    }
}

fn rate_cell(o: &Outcome) -> String {
    match (o.rate_msgs_per_s, o.scenario.as_ref().and_then(|s| s.rate_pct)) {
        (Some(r), Some(p)) => format!("{}/s ({p}%)", si(Some(r))),
        (None, Some(p)) => format!("{p}% of max"),
        _ => "max".into(),
    }
}

pub const COLUMNS: &[&str] = &[
    "scenario",
    "rate",
    "produce msgs/s",
    "produce MB/s",
    "consume msgs/s",
    "p50 ms",
    "p99 ms",
    "p99.9 ms",
    "e2e p99 ms",
    "CPU s/M msgs",
    "peak RSS MiB",
];

/// The results table in Markdown, one row per scenario.
pub fn table(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| {} |", COLUMNS.join(" | "));
    let _ = writeln!(
        s,
        "|{}|",
        COLUMNS.iter().enumerate().map(|(i, _)| if i == 0 { ":--" } else { "--:" }).collect::<Vec<_>>().join("|")
    );
    for o in &r.scenarios {
        let mut cells = vec![
            format!("{}{}", o.name, if o.ok { "" } else { " (failed)" }),
            rate_cell(o),
            spread_cell(o.produce_msgs_per_s, &o.runs_produce_msgs_per_s),
            num(o.produce_mb_per_s, 1),
            spread_cell(o.consume_msgs_per_s, &o.runs_consume_msgs_per_s),
            num(o.ack_ms("p50"), 2),
            num(o.ack_ms("p99"), 2),
            num(o.ack_ms("p99.9"), 2),
            num(o.e2e_ms("p99"), 2),
            num(o.broker_cpu_s_per_million, 2),
            num(o.rss_mib(), 0),
        ];
        for c in cells.iter_mut() {
            *c = c.replace('|', "\\|");
        }
        let _ = writeln!(s, "| {} |", cells.join(" | "));
    }
    s
}

/// The date, the machine and the command line, as every report opens.
pub fn write_run_header(md: &mut String, m: &crate::proc::Machine, command_line: &str) {
    let _ = writeln!(md, "- **Date:** {}", m.date_utc);
    let _ = writeln!(
        md,
        "- **Machine:** {} ({} CPUs usable, {} online), {} GiB RAM, {} (host {})",
        m.cpu_model, m.nproc, m.cpus_online, m.memory_gib, m.kernel, m.hostname
    );
    let _ = writeln!(md, "- **Command:** `{command_line}`");
}

pub fn write(out: &Path, r: &Results) -> Result<()> {
    let mut md = String::new();
    let _ = writeln!(md, "# corelog-bench report\n");
    write_run_header(&mut md, &r.machine, &r.command_line);
    match r.broker_mode.as_str() {
        "spawned" => {
            let b = &r.broker;
            let _ = writeln!(
                md,
                "- **Broker:** {} (`{}`), started fresh per scenario with `--shards {}`{}; data in `{}`",
                b["version"].as_str().unwrap_or("corelog"),
                b["corelog"].as_str().unwrap_or(""),
                b["shards"],
                match b["args"].as_array() {
                    Some(a) if !a.is_empty() =>
                        format!(" and `{}`", a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(" ")),
                    _ => String::new(),
                },
                b["data_dir"].as_str().unwrap_or("")
            );
        }
        _ => {
            let _ = writeln!(
                md,
                "- **Broker:** external at `{}`{}",
                r.broker["bootstrap_server"].as_str().unwrap_or("?"),
                if r.broker["pid"].is_null() {
                    " (no pid given: no CPU or RSS figures)".to_string()
                } else {
                    format!(", pid {}", r.broker["pid"])
                }
            );
        }
    }
    let opt = &r.options;
    let _ = writeln!(
        md,
        "- **Load:** `{}`, {} producer(s) and {} consumer(s) per scenario, {} s measured after {} s warm-up{}",
        r.load_binary,
        opt["producers"],
        opt["consumers"],
        opt["duration_s"],
        opt["warmup_s"],
        match opt["load_args"].as_array() {
            Some(a) if !a.is_empty() =>
                format!(", extra `{}`", a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(" ")),
            _ => String::new(),
        }
    );
    let _ = writeln!(md, "\n## Results\n");
    md += &table(r);
    let _ = writeln!(
        md,
        "\nScenario names are `SIZE-COMPRESSION-pPARTITIONS-MODE`: `acks1` produces with acks=1; `durable` \
         creates the topic with flush.messages=1 (every ack waits for fdatasync) and produces with acks=all. \
         `-rateN` runs open loop at N% of the named scenario's measured produce rate; its latency is measured \
         from each request's intended send time. Rates cover the measured window (after the warm-up); \
         latencies are produce acknowledgement latencies per request (p50/p99/p99.9) and end-to-end \
         (consumer receipt minus producer stamp). CPU s/M msgs is the broker's utime+stime over the \
         scenario (topic creation, warm-up and consumer drain included) per million produced messages; \
         peak RSS is VmHWM{}.",
        if r.broker_mode == "spawned" {
            " of the scenario's fresh broker"
        } else {
            " since the scenario started (clear_refs), when permitted"
        }
    );
    let failed: Vec<&Outcome> = r.scenarios.iter().filter(|o| !o.ok).collect();
    if !failed.is_empty() {
        let _ = writeln!(md, "\n### Failures\n");
        for o in failed {
            let _ = writeln!(md, "- **{}**:\n\n```\n{}\n```", o.name, o.error.as_deref().unwrap_or("?").trim());
        }
    }

    // Plots.
    let closed: Vec<&Outcome> =
        r.scenarios.iter().filter(|o| o.scenario.as_ref().is_some_and(|s| s.rate_pct.is_none())).collect();
    let bars: Vec<(String, Vec<f64>)> = closed
        .iter()
        .map(|o| (o.name.clone(), vec![o.produce_msgs_per_s.unwrap_or(0.0), o.consume_msgs_per_s.unwrap_or(0.0)]))
        .collect();
    std::fs::write(
        out.join("throughput.svg"),
        svg::bars("Throughput per scenario (msgs/s)", &["produce", "consume"], &bars)?,
    )?;

    let pct_keys = ["p50", "p90", "p99", "p99.9", "p99.99", "max"];
    let mut curves = Vec::new();
    for (i, o) in r.scenarios.iter().filter(|o| o.rate_msgs_per_s.is_some()).enumerate() {
        let pts = |f: &dyn Fn(&str) -> Option<f64>| pct_keys.iter().map(|k| f(k)).collect::<Vec<_>>();
        let (label, color) = (format!("{} ({}/s)", o.name, si(o.rate_msgs_per_s)), i);
        curves.push(svg::Series { label: format!("{label} ack"), points: pts(&|k| o.ack_ms(k)), dashed: false, color });
        curves.push(svg::Series { label: format!("{label} e2e"), points: pts(&|k| o.e2e_ms(k)), dashed: true, color });
    }
    std::fs::write(
        out.join("latency.svg"),
        svg::lines("Latency at fixed rates (ms, log scale)", &pct_keys.map(String::from), &curves, true, true)?,
    )?;

    let mut parts: Vec<i32> = closed.iter().filter_map(|o| o.scenario.as_ref().map(|s| s.partitions)).collect();
    parts.sort();
    parts.dedup();
    let mut groups: Vec<String> = Vec::new();
    for o in &closed {
        let g = o.scenario.as_ref().unwrap().group();
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    let series: Vec<svg::Series> = groups
        .iter()
        .enumerate()
        .map(|(color, g)| svg::Series {
            label: g.clone(),
            color,
            points: parts
                .iter()
                .map(|p| {
                    closed
                        .iter()
                        .find(|o| {
                            let s = o.scenario.as_ref().unwrap();
                            &s.group() == g && s.partitions == *p
                        })
                        .and_then(|o| o.produce_msgs_per_s)
                })
                .collect(),
            dashed: g.contains("durable"),
        })
        .collect();
    std::fs::write(
        out.join("partitions.svg"),
        svg::lines(
            "Produce throughput against partition count (msgs/s)",
            &parts.iter().map(|p| format!("{p} partitions")).collect::<Vec<_>>(),
            &series,
            false,
            false,
        )?,
    )?;

    let _ = writeln!(md, "\n## Throughput per scenario\n\n![throughput per scenario](throughput.svg)");
    let _ = writeln!(
        md,
        "\n## Latency percentiles at fixed rates\n\nSolid: produce acknowledgement latency; dashed: end to end.\n\n\
         ![latency percentile curves](latency.svg)"
    );
    let _ = writeln!(
        md,
        "\n## Throughput against partition count\n\nDashed: durable.\n\n![throughput against partition count](partitions.svg)"
    );
    let _ = writeln!(
        md,
        "\nRaw corelog-load results are in `raw/`, broker and load logs in `logs/`, everything in `results.json`."
    );
    std::fs::write(out.join("report.md"), md)
        .with_context(|| format!("writing {}", out.join("report.md").display()))?;
    Ok(())
}
