//! `graphscale crd` and `graphscale operator`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use graphscale_operator::controller::ControllerConfig;
use graphscale_operator::leader::LeaseConfig;
use graphscale_operator::run::OperatorConfig;

use crate::flags::OperatorArgs;

pub(crate) fn crd() -> Result<ExitCode> {
    say!("{}", graphscale_operator::crd::crd_yaml()?)?;
    Ok(ExitCode::SUCCESS)
}

fn identity(flag: Option<String>) -> String {
    flag.or_else(|| std::env::var("POD_NAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("graphscale-{}", std::process::id()))
}

pub(crate) async fn shutdown_signal() {
    let term = async {
        #[cfg(unix)]
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}

pub(crate) fn operator(a: OperatorArgs) -> Result<ExitCode> {
    if a.renew_every >= a.lease_duration {
        bail!(
            "--renew-every ({} s) must be less than --lease-duration ({} s)",
            a.renew_every,
            a.lease_duration
        );
    }
    let id = identity(a.identity);
    let lease = (!a.no_leader_election).then(|| {
        let ns = a
            .lease_namespace
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "default".into());
        let mut l = LeaseConfig::new(ns, id.clone());
        l.name = a.lease_name;
        l.duration = Duration::from_secs(a.lease_duration);
        l.renew_every = Duration::from_secs(a.renew_every);
        l
    });
    let cfg = OperatorConfig {
        controller: ControllerConfig {
            namespace: a.namespace,
            training_threads: a.training_threads as usize,
            instance: id,
            models_dir: a.models_dir,
            ..ControllerConfig::default()
        },
        lease,
        listen: a.listen,
        keda_listen: a.keda_listen,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(graphscale_operator::run::run(cfg, shutdown_signal()))?;
    Ok(ExitCode::SUCCESS)
}
