//! Runs the parsed command: each subcommand to the module that does it.

use std::process::ExitCode;

use anyhow::Result;

use crate::flags::{BenchCommand, Cli, Command, ForecastCommand, SimCommand};

/// `--force`, set once before the command runs.
static FORCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Whether an output file that exists may be replaced (`--force`).
pub(crate) fn existing() -> graphscale_fsio::Existing {
    graphscale_fsio::Existing::replace_if(FORCE.get().copied().unwrap_or(false))
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let _ = FORCE.set(cli.force);
    match cli.command {
        Command::Demo(a) => crate::experiment::demo(a),
        Command::Crd => crate::operator::crd(),
        Command::Operator(a) => crate::operator::operator(a),
        Command::Serve(a) => crate::api::serve(a),
        Command::Eval(a) => crate::experiment::eval(a),
        Command::TuneHpa(a) => crate::tune::tune_hpa(a),
        Command::Sim {
            command:
                SimCommand::Serve {
                    app,
                    scenario,
                    autoscaler,
                    seed,
                    speed,
                    listen,
                    namespace,
                    duration,
                    follow_cluster,
                },
        } => crate::serve::sim_serve(crate::serve::ServeArgs {
            app,
            scenario,
            autoscaler,
            seed,
            speed,
            listen,
            namespace,
            duration,
            follow_cluster,
        }),
        Command::Sim { command } => crate::simulate::sim(command),
        Command::Collect(f) => crate::serve::collect_cmd(f.into_args()),
        Command::Forecast {
            command:
                ForecastCommand::Fit {
                    series,
                    model,
                    season,
                    max_horizon,
                    nn_config,
                    out,
                },
        } => crate::forecast::fit_cmd(crate::forecast::FitArgs {
            series: series.into_args(),
            model,
            nn_config,
            season,
            max_horizon_s: max_horizon,
            out,
        }),
        Command::Forecast {
            command:
                ForecastCommand::Predict {
                    model,
                    horizon,
                    quantiles,
                    json,
                },
        } => crate::forecast::predict_cmd(&model, horizon, &quantiles, json),
        Command::Forecast {
            command:
                ForecastCommand::Backtest {
                    series,
                    horizon,
                    window,
                    every,
                    models,
                    season,
                    level,
                    calibration,
                    scale_window,
                    refit_every,
                    nn_config,
                    out,
                },
        } => crate::forecast::backtest_cmd(crate::forecast::BacktestArgs {
            series: series.into_args(),
            horizons_s: horizon,
            window_s: window,
            every_s: every,
            models,
            season,
            level,
            calibration,
            scale_window,
            refit_every,
            nn_config,
            out,
        }),
        Command::Discover(f) => crate::serve::discover_cmd(f.into_args()),
        Command::Topology { command } => crate::data::topology_cmd(command),
        Command::Calibrate { data, out } => crate::data::calibrate_cmd(&data, &out),
        Command::Shadow {
            record,
            against,
            json,
        } => crate::data::shadow_cmd(&record, &against, json.as_deref()),
        Command::Rl { command } => crate::rl::rl(command),
        Command::Bench { quick: true, .. } => crate::bench::quick(),
        Command::Bench { command: None, .. } => {
            anyhow::bail!("name a benchmark (`graphscale bench --help`) or pass --quick")
        }
        Command::Bench {
            command: Some(command),
            ..
        } => match command {
            BenchCommand::Sim { seconds, apps } => crate::bench::sim(seconds, &apps),
            BenchCommand::Rl {
                app,
                env_steps,
                updates,
            } => crate::bench_rl::rl(&app, env_steps, updates),
            BenchCommand::Decide {
                rounds,
                warmup,
                apps,
                autoscalers,
            } => crate::bench::decide(rounds, warmup, &apps, &autoscalers),
            BenchCommand::Forecast { csv, models } => crate::bench::forecast(&csv, &models),
            BenchCommand::Keda {
                workloads,
                requests,
                concurrency,
            } => crate::bench_keda::keda(workloads, requests, &concurrency),
            BenchCommand::Hgt {
                apps,
                dim,
                heads,
                layers,
                runs,
            } => crate::bench::hgt(&apps, dim, heads, layers, runs),
            BenchCommand::Nn(f) => crate::bench::nn(f.batch, f.window, f.hidden, f.outputs, f.runs),
            BenchCommand::GraphModels {
                data,
                models,
                config,
                epochs,
                no_lstm,
                json,
            } => {
                crate::graph::compare_cmd(&data, &models, config.as_deref(), epochs, !no_lstm, json)
            }
        },
        Command::Train {
            model,
            data,
            config,
            epochs,
            out,
        } => crate::graph::train_cmd(&model, &data, config.as_deref(), epochs, &out),
        Command::Predict {
            model,
            snapshot,
            json,
        } => crate::graph::predict_cmd(&model, &snapshot, json),
    }
}
