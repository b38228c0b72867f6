//! `topology`, `calibrate` and `shadow`: the built-in apps, re-deriving them from real data,
//! and replaying a recorded run through another autoscaler.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use graphscale_eval::report;
use graphscale_eval::AutoscalerSpec;
use graphscale_sim::{calibrate, topology};

use crate::flags::TopologyCommand;

pub(crate) fn topology_cmd(cmd: TopologyCommand) -> Result<ExitCode> {
    match cmd {
        TopologyCommand::List => {
            crate::say!(
                "{:18} {:>8} {:>6} {:>8} {:>10}  description",
                "name",
                "services",
                "edges",
                "SLO ms",
                "peak rps"
            )?;
            for name in [
                "online-boutique",
                "train-ticket",
                "alibaba",
                "event-driven",
                "random:100",
            ] {
                let a = topology::builtin(name)?;
                crate::say!(
                    "{:18} {:>8} {:>6} {:>8} {:>10}  {}",
                    name,
                    a.services.len(),
                    a.edges.len(),
                    a.slo_ms,
                    a.nominal_peak_rps,
                    a.description
                )?;
            }
        }
        TopologyCommand::Show { name } => {
            let a = topology::builtin(&name)?;
            crate::say!("{}", serde_json::to_string_pretty(&a)?)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn calibrate_cmd(data: &Path, out: &Path) -> Result<ExitCode> {
    if !data.is_dir() {
        bail!("{}: not a folder (the shared data folder, with microservices-ob-tt and alibaba-2022-microservices)", data.display());
    }
    for (file, app) in calibrate::all(data)? {
        let path = out.join(&file);
        report::write_atomic(
            &path,
            (serde_json::to_string_pretty(&app)? + "\n").as_bytes(),
            crate::app::existing(),
        )?;
        crate::say!(
            "{}: {} services, {} edges, SLO {} ms, nominal peak {} rps",
            path.display(),
            app.services.len(),
            app.edges.len(),
            app.slo_ms,
            app.nominal_peak_rps
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn shadow_cmd(record: &Path, against: &str, json: Option<&Path>) -> Result<ExitCode> {
    let text =
        std::fs::read_to_string(record).with_context(|| format!("reading {}", record.display()))?;
    let records = graphscale_eval::shadow::parse_records(&text, &record.display().to_string())?;
    let spec = AutoscalerSpec::named(against)?;
    // The autoscaler is built for an app only to size `static`; any built-in app will do for
    // the others, which learn everything from the snapshots.
    let app = topology::builtin("online-boutique")?;
    let other = graphscale_eval::build_autoscaler(&spec, &app)?;
    let rep = graphscale_eval::shadow::shadow(&records, other)?;
    crate::say!(
        "shadow: {} decisions of {} replayed through `{}` (open loop)",
        rep.decisions,
        record.display(),
        rep.shadow_name
    )?;
    crate::say!(
        "{:24} {:>16} {:>16} {:>10} {:>10} {:>9} {:>9}",
        "workload",
        "core-h recorded",
        format!("core-h {}", rep.shadow_name),
        "short rec",
        format!("short {}", rep.shadow_name),
        "chg rec",
        "chg shd"
    )?;
    for r in rep
        .rows
        .iter()
        .chain(std::iter::once(&graphscale_eval::shadow::ShadowRow {
            workload: "TOTAL".into(),
            recorded: rep.total_recorded.clone(),
            shadow: rep.total_shadow.clone(),
        }))
    {
        crate::say!(
            "{:24} {:>16.3} {:>16.3} {:>10} {:>10} {:>9} {:>9}",
            r.workload,
            r.recorded.cpu_core_hours,
            r.shadow.cpu_core_hours,
            r.recorded.short_decisions,
            r.shadow.short_decisions,
            r.recorded.changes,
            r.shadow.changes
        )?;
    }
    crate::say!(
        "SLO favours: {} (fewer decisions short of the demand one start-up later); cost favours: {}",
        rep.slo_favours,
        rep.cost_favours
    )?;
    if let Some(p) = json {
        report::write_atomic(
            p,
            serde_json::to_string_pretty(&rep)?.as_bytes(),
            crate::app::existing(),
        )?;
        crate::say!("wrote {}", p.display())?;
    }
    Ok(ExitCode::SUCCESS)
}
