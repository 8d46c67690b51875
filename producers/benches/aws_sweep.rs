//! Sweeps an AWS organisation of 5,000 accounts served by `moto` into a real `nats-server`, and
//! reports the time spent in the provider (the listing alone) and in the pipeline (diff and
//! publish). `cargo bench -p inventory-producers --bench aws_sweep`; `AWS_BENCH_ACCOUNTS`
//! changes the size. Results go to BENCHMARKS.md ("AWS collector sweep").
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use aws_sdk_organizations::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_organizations::types::{OrganizationFeatureSet, Tag};
use aws_sdk_organizations::Client;
use futures::{stream, StreamExt};
use inventory_bus::{self as bus, NatsConfig, StreamSettings};
use inventory_producers::sources::{AwsConfig, AwsSource};
use inventory_producers::{run_sweep, CollectFuture, Source, SweepOptions};
use inventory_testkit::{Moto, NatsServer};

fn creds() -> Credentials {
    Credentials::new("testing", "testing", None, None, "bench")
}

fn admin(url: &str) -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    Client::from_conf(
        aws_sdk_organizations::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(creds())
            .endpoint_url(url)
            .http_client(http)
            .build(),
    )
}

/// 4 top OUs, 3 under each, 2 under each of those (40 OUs, 3 levels); accounts spread over all of
/// them and the root, every tenth tagged.
async fn build(c: &Client, n: usize) -> usize {
    c.create_organization()
        .feature_set(OrganizationFeatureSet::All)
        .send()
        .await
        .unwrap();
    let root = c.list_roots().send().await.unwrap().roots()[0]
        .id()
        .unwrap()
        .to_owned();
    let mut parents = vec![root.clone()];
    let mut level = vec![root.clone()];
    for width in [4, 3, 2] {
        let mut next = Vec::new();
        for p in &level {
            for i in 0..width {
                let ou = c
                    .create_organizational_unit()
                    .parent_id(p)
                    .name(format!("ou-{}-{i}", next.len()))
                    .send()
                    .await
                    .unwrap();
                next.push(ou.organizational_unit().unwrap().id().unwrap().to_owned());
            }
        }
        parents.extend(next.iter().cloned());
        level = next;
    }
    let ous = parents.len() - 1;
    stream::iter(0..n)
        .map(|i| {
            let target = parents[i % parents.len()].clone();
            let root = root.clone();
            async move {
                let out = c
                    .create_account()
                    .email(format!("bench{i}@example.com"))
                    .account_name(format!("bench-{i:05}"))
                    .send()
                    .await
                    .unwrap();
                let id = out
                    .create_account_status()
                    .unwrap()
                    .account_id()
                    .unwrap()
                    .to_owned();
                if target != root {
                    c.move_account()
                        .account_id(&id)
                        .source_parent_id(&root)
                        .destination_parent_id(&target)
                        .send()
                        .await
                        .unwrap();
                }
                if i % 10 == 0 {
                    c.tag_resource()
                        .resource_id(&id)
                        .tags(Tag::builder().key("team").value("bench").build().unwrap())
                        .send()
                        .await
                        .unwrap();
                }
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    ous
}

/// The source, timing its `collect` (the provider's share of a sweep).
struct Timed<'a> {
    inner: &'a AwsSource,
    spent: Mutex<Duration>,
}

impl Source for Timed<'_> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn provider(&self) -> &str {
        self.inner.provider()
    }
    fn scope(&self) -> &str {
        self.inner.scope()
    }
    fn source_uri(&self) -> String {
        self.inner.source_uri()
    }
    fn subject_filter(&self) -> String {
        self.inner.subject_filter()
    }
    fn collect(&self) -> CollectFuture<'_> {
        Box::pin(async move {
            let t = Instant::now();
            let r = self.inner.collect().await;
            *self.spent.lock().unwrap() = t.elapsed();
            r
        })
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("AWS_BENCH_ACCOUNTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let nats = NatsServer::start();
    let moto = Moto::start();
    let client = bus::connect(&NatsConfig {
        url: nats.url(),
        name: "aws-bench".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let js = jetstream::new(client);
    let stream = bus::ensure_stream(&js, &StreamSettings::default())
        .await
        .unwrap();

    let t = Instant::now();
    let ous = build(&admin(&moto.url()), n).await;
    let setup = t.elapsed();
    println!(
        "moto: organisation of {n} accounts in {ous} OUs created in {}",
        secs(setup)
    );

    let config = AwsConfig {
        endpoint_url: Some(moto.url()),
        sts_endpoint_url: Some(moto.url()),
        credentials: Some(creds()),
        ..AwsConfig::new()
    };
    // `AWS_BENCH_TAGS=false` skips the tag reads (one call per account) in the sweeps.
    let tags = std::env::var("AWS_BENCH_TAGS").map_or(true, |v| v != "false");
    let label = if tags { "with tags" } else { "without tags" };
    let src = AwsSource::connect(AwsConfig { tags, ..config })
        .await
        .unwrap();
    let t = Instant::now();
    let collected = src.collect().await.unwrap();
    let alone = t.elapsed();
    assert!(collected.complete, "{:?}", collected.error);
    assert_eq!(collected.assets.len(), n + 1);
    println!(
        "{label}: provider listing alone (collect): {} for {} accounts, {} pages",
        secs(alone),
        collected.assets.len(),
        collected.provenance.pages
    );
    for what in ["first sweep (all discovered)", "second sweep (unchanged)"] {
        let timed = Timed {
            inner: &src,
            spent: Mutex::new(Duration::ZERO),
        };
        let t = Instant::now();
        let r = run_sweep(&js, &stream, &timed, &SweepOptions::default())
            .await
            .unwrap();
        let total = t.elapsed();
        assert_eq!(r.counts.seen as usize, n + 1, "{:?}", r.error);
        let provider = *timed.spent.lock().unwrap();
        let pipeline = total.saturating_sub(provider);
        println!(
            "{label}: {what}: {} total; provider (collect) {} ({:.1} %), pipeline (read last events, diff, publish, sweep event) {} ({:.1} %); {} discovered, {} unchanged",
            secs(total),
            secs(provider),
            100.0 * provider.as_secs_f64() / total.as_secs_f64(),
            secs(pipeline),
            100.0 * pipeline.as_secs_f64() / total.as_secs_f64(),
            r.counts.discovered,
            r.counts.unchanged
        );
    }
}
