//! `cargo xtask plot`: SVG charts of the agent bench's results (`target/bench/bench-agent-*.json`,
//! written by `cargo xtask bench agent`): the latency CDF, cost against cluster size, ours
//! against `ipvsadm -R` + `ipset restore`. One series per label (`BENCH_LABEL`: e.g. `before`,
//! `kube-ipvs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use plotters::prelude::*;
use serde_json::Value;

#[derive(Debug, Args, Default)]
pub struct PlotArgs {
    /// Where the results are (default `target/bench`).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Where the charts go (default: the results' directory).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// One bench result: its label, size and figures.
struct Run {
    label: String,
    services: f64,
    v: Value,
}

fn num(v: &Value, path: &str) -> Option<f64> {
    v.pointer(path).and_then(Value::as_f64)
}

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

pub fn run(args: &PlotArgs) -> Result<()> {
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| crate::util::target_dir().join("bench"));
    let out = args.out.clone().unwrap_or_else(|| dir.clone());
    std::fs::create_dir_all(&out)?;
    let font = std::fs::read(FONT)
        .with_context(|| format!("{FONT} (apt-get install fonts-dejavu-core)"))?;
    plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(font.into()))
        .map_err(|_| anyhow::anyhow!("{FONT}: not a font"))?;
    let mut runs = Vec::new();
    for f in std::fs::read_dir(&dir).with_context(|| dir.display().to_string())? {
        let path = f?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if !(name.starts_with("bench-agent-") && name.ends_with(".json")) {
            continue;
        }
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)
            .with_context(|| path.display().to_string())?;
        runs.push(Run {
            label: v
                .get("label")
                .and_then(Value::as_str)
                .unwrap_or("kube-ipvs")
                .to_owned(),
            services: num(&v, "/services").unwrap_or(0.0),
            v,
        });
    }
    if runs.is_empty() {
        bail!("no bench-agent-*.json in {}", dir.display());
    }
    runs.sort_by(|a, b| {
        (&a.label, a.services)
            .partial_cmp(&(&b.label, b.services))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    latency_cdf(&runs, &out.join("agent-latency-cdf.svg"))?;
    scaling(&runs, &out.join("agent-scaling.svg"))?;
    versus_tools(&runs, &out.join("agent-vs-tools.svg"))?;
    println!("xtask: charts in {}", out.display());
    Ok(())
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing: {e:?}")
}

/// The CDF of every run's single-change latencies, log time axis.
fn latency_cdf(runs: &[Run], path: &Path) -> Result<()> {
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Network-programming latency of single-slice changes (CDF)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((0.5f64..2000f64).log_scale(), 0f64..1f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms)")
        .y_desc("fraction of changes")
        .draw()
        .map_err(err)?;
    for (i, r) in runs.iter().enumerate() {
        let mut raw: Vec<f64> =
            r.v.pointer("/latency/raw_ms")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default();
        if raw.is_empty() {
            continue;
        }
        raw.sort_by(f64::total_cmp);
        let n = raw.len() as f64;
        let color = Palette99::pick(i).to_rgba();
        let points = raw
            .iter()
            .enumerate()
            .map(|(k, ms)| (ms.max(0.5), (k + 1) as f64 / n));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(err)?
            .label(format!(
                "{} {}k Services (p99 {:.1} ms)",
                r.label,
                r.services / 1000.0,
                num(&r.v, "/latency/p99_ms").unwrap_or(0.0)
            ))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Series per label: (services, value) for one figure.
fn series(runs: &[Run], f: impl Fn(&Value) -> Option<f64>) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in runs {
        if let Some(y) = f(&r.v) {
            out.entry(r.label.clone())
                .or_default()
                .push((r.services, y));
        }
    }
    out
}

/// One figure of a result.
type Figure = Box<dyn Fn(&Value) -> Option<f64>>;

/// Cost against cluster size: latency p99, idle CPU per syncPeriod, steady RSS, initial
/// programming; log-log, one line per label.
fn scaling(runs: &[Run], path: &Path) -> Result<()> {
    let root = SVGBackend::new(path, (1100, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let panels = root.split_evenly((2, 2));
    let figures: [(&str, Figure); 4] = [
        ("latency p99 (ms)", Box::new(|v| num(v, "/latency/p99_ms"))),
        (
            "CPU per idle syncPeriod (s)",
            Box::new(|v| num(v, "/idle/cpu_per_period_s")),
        ),
        (
            "RSS after start-up and 3 repairs (MiB)",
            Box::new(|v| {
                v.get("rss_repairs_mib")
                    .and_then(Value::as_array)
                    .and_then(|a| a.last())
                    .and_then(Value::as_f64)
                    .or_else(|| num(v, "/rss_startup_mib"))
            }),
        ),
        (
            "initial programming (s)",
            Box::new(|v| num(v, "/initial_s")),
        ),
    ];
    for (area, (title, f)) in panels.iter().zip(figures) {
        let data = series(runs, f);
        let ys = data.values().flatten().map(|p| p.1);
        let (lo, hi) = ys.fold((f64::MAX, f64::MIN), |(l, h), y| (l.min(y), h.max(y)));
        if lo > hi {
            continue;
        }
        let (lo, hi) = ((lo / 2.0).max(1e-3), hi * 2.0);
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d((500f64..100_000f64).log_scale(), (lo..hi).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("Services")
            .draw()
            .map_err(err)?;
        for (i, (label, points)) in data.into_iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(err)?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(points.iter().map(|p| Circle::new(*p, 4, color.filled())))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// Initial programming: the agent against `ipvsadm -R` + `ipset restore` of the same rules in a
/// fresh namespace (an unfinished baseline is extrapolated from its rate), per size.
fn versus_tools(runs: &[Run], path: &Path) -> Result<()> {
    let agent = series(runs, |v| num(v, "/initial_s"));
    let tools = series(runs, |v| {
        let b = v.get("baseline")?;
        if b.get("finished")?.as_bool()? {
            num(b, "/seconds")
        } else {
            Some(num(b, "/rules")? / num(b, "/rules_per_s")?.max(1e-9))
        }
    });
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let ys = agent.values().chain(tools.values()).flatten().map(|p| p.1);
    let (lo, hi) = ys.fold((f64::MAX, f64::MIN), |(l, h), y| (l.min(y), h.max(y)));
    if lo > hi {
        return Ok(());
    }
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Initial programming: kube-ipvs vs ipvsadm -R + ipset restore (same rules)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (500f64..100_000f64).log_scale(),
            ((lo / 2.0).max(1e-3)..hi * 2.0).log_scale(),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("Services (x2 virtual servers, x4 real servers)")
        .y_desc("seconds")
        .draw()
        .map_err(err)?;
    let mut i = 0;
    for (who, data) in [("", &agent), (" baseline (C tools)", &tools)] {
        for (label, points) in data {
            let color = Palette99::pick(i).to_rgba();
            i += 1;
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(err)?
                .label(format!("{label}{who}"))
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(points.iter().map(|p| Circle::new(*p, 4, color.filled())))
                .map_err(err)?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
