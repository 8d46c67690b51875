//! `inventory up`: the whole pipeline on one machine for trying it out and for demos.
//!
//! Uses the NATS answering at `NATS_URL` when it has JetStream; otherwise starts `nats-server -js`
//! (store under the data dir) when `NATS_URL` points at this machine. Starts a Prometheus that
//! scrapes the API, the API itself, and collectors for the declared-assets file, that Prometheus
//! and (when `GRAFANA_URL` is set) Grafana, sweeping every `--every`. Ctrl-C stops everything.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::cli::{Global, UpArgs};

/// Runs the local stack until cancelled.
pub async fn run(
    global: &Global,
    args: UpArgs,
    cancel: CancellationToken,
) -> anyhow::Result<ExitCode> {
    let data = absolute(&args.data_dir)?;
    std::fs::create_dir_all(data.join("logs"))
        .with_context(|| format!("INVENTORY_DATA_DIR {}", data.display()))?;
    let mut children: Vec<(&'static str, Child)> = Vec::new();
    // For logs and messages: any user and password in NATS_URL are left out.
    let shown = inventory_bus::redact_url(&global.nats_url);
    let mut global_nats = shown.clone();

    // 1. NATS with JetStream.
    match probe_jetstream(global).await {
        Ok(()) => {
            info!(url = %shown, "using the NATS JetStream server that answers at NATS_URL")
        }
        Err(reason) => {
            let addr = loopback_addr(&global.nats_url).with_context(|| {
                format!("NATS_URL {shown} does not answer ({reason}) and is not on this machine, so none can be started for it")
            })?;
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                bail!("NATS_URL {shown}: a server answers there without JetStream ({reason}); point NATS_URL at a free port to have one started");
            }
            let store = data.join("nats");
            let child = spawn(
                "nats-server",
                &[
                    "-js".into(),
                    "-a".into(),
                    addr.ip().to_string(),
                    "-p".into(),
                    addr.port().to_string(),
                    "-sd".into(),
                    store.display().to_string(),
                ],
                &data.join("logs/nats.log"),
            )?;
            children.push(("nats-server", child));
            global_nats = format!("nats://{addr}");
            wait_until(Duration::from_secs(20), || async {
                probe_jetstream(global).await.is_ok()
            })
            .await
            .context("nats-server did not come up (see .data/logs/nats.log)")?;
            info!(url = %global_nats, store = %store.display(), "started nats-server with JetStream");
        }
    }

    // 2. Prometheus scraping the API.
    let prom_url = format!("http://{}", args.prometheus_listen);
    if http_ok(format!("{prom_url}/-/healthy")).await {
        warn!(url = %prom_url, "a Prometheus already answers there; using it (it may not scrape this API)");
    } else {
        let config = data.join("prometheus.yml");
        std::fs::write(
            &config,
            prometheus_config(args.serve.listen, args.prometheus_listen),
        )
        .with_context(|| format!("write {}", config.display()))?;
        let child = spawn(
            "prometheus",
            &[
                format!("--config.file={}", config.display()),
                format!("--storage.tsdb.path={}", data.join("prometheus").display()),
                format!("--web.listen-address={}", args.prometheus_listen),
            ],
            &data.join("logs/prometheus.log"),
        )?;
        children.push(("prometheus", child));
        wait_until(Duration::from_secs(30), || {
            http_ok(format!("{prom_url}/-/ready"))
        })
        .await
        .context("prometheus did not become ready (see .data/logs/prometheus.log)")?;
    }

    // 3. The API with its embedded projector.
    let mut serve_args = args.serve;
    // Staleness is judged against the interval the local collectors actually sweep at.
    serve_args.sweep_interval = args.every;
    if serve_args.db == Path::new(".data/api.duckdb") {
        serve_args.db = data.join("api.duckdb");
    }
    // The checkpoints' key, made on first start: the API verifies with its public half unless
    // verifier keys were given, so the local console shows the stream's integrity at once.
    let signing_key = match args.signing_key_file.clone() {
        Some(path) => path,
        None => crate::evidence::keygen::ensure_local(&data)?,
    };
    if serve_args.verifier_key.is_empty() {
        serve_args.verifier_key = vec![crate::evidence::load_signer(&signing_key)?
            .verifier()
            .key_text()];
    }
    let api_url = format!("http://{}", serve_args.listen);
    let cfg = crate::serve_config(global, &serve_args)?;
    let api_cancel = cancel.child_token();
    let api = tokio::spawn(inventory_query_api::serve(cfg, api_cancel.clone()));
    wait_until(Duration::from_secs(60), || {
        http_ok(format!("{api_url}/healthz"))
    })
    .await
    .context("the API did not start")?;

    // 4. Collectors.
    let collectors = crate::collect::local_collectors(args.file.clone(), &prom_url).await?;
    let collect_task = tokio::spawn(crate::collect::run_local(
        crate::nats_config(global, "inventory-up-collectors"),
        crate::stream_settings(global),
        collectors,
        args.every,
        cancel.child_token(),
    ));

    // 5. Signed checkpoints of the stream (docs/audit.md), with the key made on first start.
    let checkpoint_task = tokio::spawn(crate::evidence::checkpoint::run_periodic(
        crate::nats_config(global, "inventory-up-checkpoint"),
        usize::from(global.stream_replicas),
        signing_key,
        crate::evidence::default_origin(),
        args.checkpoint_every,
        cancel.child_token(),
    ));

    print_banner(&api_url, &prom_url, &global_nats, &data, args.every);
    cancel.cancelled().await;

    // Orderly stop: collectors, API (drains requests, stops the projector), then processes.
    let _ = crate::bounded("collectors", Duration::from_secs(15), collect_task).await;
    let _ = crate::bounded("checkpoints", Duration::from_secs(15), checkpoint_task).await;
    api_cancel.cancel();
    if let Some(Ok(Err(e))) = crate::bounded("api", Duration::from_secs(15), api).await {
        warn!(error = %e, "API stopped with an error");
    }
    for (name, mut child) in children.into_iter().rev() {
        stop_child(name, &mut child).await;
    }
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout)]
fn print_banner(api: &str, prom: &str, nats: &str, data: &Path, every: Duration) {
    println!();
    println!("asset-inventory is running (Ctrl-C stops everything)");
    println!("  API           {api}/api/v1/assets");
    println!("  accounts      {api}/api/v1/accounts?provider=aws");
    println!("  monitoring    {api}/api/v1/monitoring?kind=prometheus");
    println!("  collectors    {api}/api/v1/collectors");
    println!("  OpenAPI       {api}/openapi.json   Swagger UI {api}/docs");
    println!("  metrics       {api}/metrics");
    println!("  Prometheus    {prom}");
    println!("  NATS          {nats}  (stream INVENTORY)");
    println!("  data          {}", data.display());
    println!(
        "  collectors sweep every {}",
        humantime::format_duration(every)
    );
    println!();
}

fn prometheus_config(api: SocketAddr, itself: SocketAddr) -> String {
    format!(
        "# Written by `inventory up`.\nglobal:\n  scrape_interval: 15s\n  evaluation_interval: 15s\n\
         scrape_configs:\n  - job_name: asset-inventory\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['{api}']\n\
         \x20 - job_name: prometheus\n    static_configs:\n      - targets: ['{itself}']\n"
    )
}

async fn probe_jetstream(global: &Global) -> Result<(), String> {
    let cfg = crate::nats_config(global, "inventory-up-probe");
    let client = tokio::time::timeout(Duration::from_secs(3), inventory_bus::connect(&cfg))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let js = async_nats::jetstream::new(client);
    // Creating (or finding) the stream is the probe: it needs JetStream and is needed anyway.
    inventory_bus::ensure_stream(&js, &crate::stream_settings(global))
        .await
        .map(|_| ())
        .map_err(|e| format!("JetStream not available: {e}"))
}

/// The socket address of `NATS_URL`'s (first) server when it is on this machine (loopback or
/// localhost).
fn loopback_addr(url: &str) -> Option<SocketAddr> {
    let first = inventory_bus::server_addrs(url).ok()?.into_iter().next()?;
    let ip = match first.host() {
        "localhost" => std::net::IpAddr::from([127, 0, 0, 1]),
        h => h.trim_matches(['[', ']']).parse().ok()?,
    };
    ip.is_loopback()
        .then_some(SocketAddr::new(ip, first.port()))
}

fn spawn(program: &str, args: &[String], log: &Path) -> anyhow::Result<Child> {
    let out = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
    let err = out.try_clone()?;
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| {
            format!("cannot start {program} (is it installed? `make run` installs it)")
        })
}

async fn stop_child(name: &str, child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await;
    }
    match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
        Ok(_) => info!(process = name, "stopped"),
        Err(_) => {
            warn!(process = name, "did not stop within 10 s; killing");
            let _ = child.kill().await;
        }
    }
}

async fn http_ok(url: String) -> bool {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build();
    match client {
        Ok(c) => c
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success()),
        Err(_) => false,
    }
}

async fn wait_until<F, Fut>(limit: Duration, mut f: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("timed out after {} s", limit.as_secs())
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_owned()
    } else {
        std::env::current_dir()?.join(p)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls() {
        assert_eq!(
            loopback_addr("nats://127.0.0.1:4222"),
            Some(SocketAddr::from(([127, 0, 0, 1], 4222)))
        );
        assert_eq!(
            loopback_addr("nats://u:p@localhost:5000"),
            Some(SocketAddr::from(([127, 0, 0, 1], 5000)))
        );
        assert_eq!(loopback_addr("nats://10.0.0.1:4222"), None);
        assert_eq!(loopback_addr("nats://nats.example.com:4222"), None);
        assert_eq!(
            loopback_addr("nats://[::1]:4300, nats://10.0.0.1:4222"),
            Some(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 4300)))
        );
        assert_eq!(loopback_addr("nats://127.0.0.1:99999"), None);
    }
}
