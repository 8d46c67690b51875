//! Every source's settings come from clap, parsed once (`inventory collect <source>`): each
//! documented environment variable reaches its setting, a flag wins over its variable, and the
//! per-request timeouts are applied: a server that accepts connections and never answers trips
//! the configured timeout (1 s), not the default one (10 s).
//!
//! One test in its own binary: it sets environment variables, and no other test runs beside it.

use std::time::{Duration, Instant};

use clap::Parser;
use inventory_producers::sources::{
    AwsConfig, AzureConfig, Common, FileConfig, GcpConfig, GrafanaConfig, PrometheusConfig,
    SourceArgs,
};
use inventory_schemas::AssetStatus;

#[derive(Debug, Parser)]
struct Collect {
    #[command(subcommand)]
    source: SourceArgs,
}

/// `inventory collect <args>`, as the binary parses it (the command is built here, so the
/// environment is read now).
fn parse(args: &[&str]) -> SourceArgs {
    Collect::try_parse_from(std::iter::once("collect").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
        .source
}

#[test]
fn every_variable_reaches_its_setting_and_the_timeouts_apply() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // A server that accepts connections and never answers.
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let silent = format!("http://{}", listener.local_addr().expect("addr"));
    rt.spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });

    for unset in [
        "AWS_REGION",
        "AWS_ENDPOINT_URL_ORGANIZATIONS",
        "AZURE_SCOPE",
        "AZURE_CLIENT_SECRET",
        "AZURE_FEDERATED_TOKEN_FILE",
    ] {
        std::env::remove_var(unset);
    }
    for (var, value) in [
        ("INVENTORY_ASSETS_FILE", "/srv/declared/assets.yaml"),
        ("PROM_URL", silent.as_str()),
        ("PROM_NAME", "prom-env"),
        ("PROM_TIMEOUT_SECS", "1"),
        ("GRAFANA_URL", silent.as_str()),
        ("GRAFANA_TOKEN", "glsa_env"),
        ("GRAFANA_NAME", "grafana-env"),
        ("GRAFANA_TIMEOUT_SECS", "1"),
        (
            "AWS_ORG_AUDIT_ROLE_ARN",
            "arn:aws:iam::222222222222:role/audit",
        ),
        ("AWS_ORG_AUDIT_EXTERNAL_ID", ""),
        ("AWS_ORG_AUDIT_SESSION_NAME", "audit-env"),
        ("AWS_DEFAULT_REGION", "eu-west-1"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
        ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:4567"),
        ("AWS_ORG_ID", "o-abcdef1234"),
        ("AWS_ORG_TAGS", "no"),
        ("AWS_ORG_CONCURRENCY", "7"),
        ("AWS_MAX_ATTEMPTS", "2"),
        ("AWS_ORG_TIMEOUT_SECS", "4"),
        ("AWS_ORG_DEADLINE_SECS", "60"),
        ("GCP_RESOURCEMANAGER_ENDPOINT", "http://127.0.0.1:8085"),
        ("GCP_PROJECT_QUERY", "parent:organizations/1"),
        ("GCP_SCOPE", "org-1"),
        ("GCP_PAGE_SIZE", "7"),
        ("GCP_DEADLINE_SECS", "11"),
        ("GCP_TIMEOUT_SECS", "3"),
        ("GCP_RETRY_MAX_WAIT_SECS", "2"),
        ("GCP_ACCESS_TOKEN", "ya29.env"),
        ("AZURE_TENANT_ID", "tenant-1"),
        ("AZURE_CLIENT_ID", "client-1"),
        ("AZURE_RESOURCE_MANAGER_ENDPOINT", "http://127.0.0.1:8086"),
        ("AZURE_SUBSCRIPTIONS_API_VERSION", "2020-01-01"),
        ("AZURE_MANAGEMENT_GROUPS", "False"),
        ("AZURE_TOKEN_SCOPE", "api://arm/.default"),
        ("AZURE_TIMEOUT_SECS", "5"),
        ("AZURE_RETRY_DEADLINE_SECS", "6"),
        ("AZURE_RETRY_MAX_WAIT_SECS", "8"),
        ("AZURE_ACCESS_TOKEN", "t0k3n"),
    ] {
        std::env::set_var(var, value);
    }
    let secs = Duration::from_secs;

    let SourceArgs::File(file) = parse(&["file"]) else {
        panic!("not file")
    };
    assert_eq!(file.path.to_str(), Some("/srv/declared/assets.yaml"));
    let SourceArgs::File(FileConfig { path, .. }) = parse(&["file", "--file", "x.yaml"]) else {
        panic!("not file")
    };
    assert_eq!(
        path.to_str(),
        Some("x.yaml"),
        "a flag wins over its variable"
    );

    let SourceArgs::Prometheus(prom) = parse(&["prometheus"]) else {
        panic!("not prometheus")
    };
    assert_eq!(
        (prom.url.as_str(), prom.name.as_str(), prom.timeout),
        (silent.as_str(), "prom-env", secs(1))
    );
    let SourceArgs::Prometheus(PrometheusConfig { timeout, .. }) =
        parse(&["prometheus", "--timeout-secs", "2"])
    else {
        panic!("not prometheus")
    };
    assert_eq!(timeout, secs(2), "a flag wins over its variable");

    let SourceArgs::Grafana(grafana) = parse(&["grafana"]) else {
        panic!("not grafana")
    };
    let GrafanaConfig {
        url,
        token,
        name,
        timeout,
        ..
    } = grafana.clone();
    assert_eq!(
        (url.as_str(), token.as_deref(), name.as_str(), timeout),
        (silent.as_str(), Some("glsa_env"), "grafana-env", secs(1))
    );

    let SourceArgs::Aws(aws) = parse(&["aws"]) else {
        panic!("not aws")
    };
    let AwsConfig {
        role_arn,
        external_id,
        session_name,
        org_id,
        tags,
        concurrency,
        max_attempts,
        timeout,
        deadline,
        ..
    } = aws.clone();
    assert_eq!(
        role_arn.as_deref(),
        Some("arn:aws:iam::222222222222:role/audit")
    );
    assert_eq!(external_id.as_deref(), Some(""), "blank: unset when built");
    assert_eq!(session_name, "audit-env");
    assert_eq!(
        aws.region(),
        "eu-west-1",
        "AWS_DEFAULT_REGION when AWS_REGION is unset"
    );
    assert_eq!(aws.organizations_endpoint(), Some("http://127.0.0.1:4566"));
    assert_eq!(aws.sts_endpoint(), Some("http://127.0.0.1:4567"));
    assert_eq!(org_id.as_deref(), Some("o-abcdef1234"));
    assert_eq!(
        (tags, concurrency, max_attempts, timeout, deadline),
        (false, 7, 2, secs(4), secs(60))
    );
    aws.validate().expect("valid");

    let SourceArgs::Gcp(gcp) = parse(&["gcp"]) else {
        panic!("not gcp")
    };
    let GcpConfig {
        endpoint,
        query,
        scope,
        page_size,
        deadline,
        timeout,
        retry_max,
        access_token,
        ..
    } = gcp;
    assert_eq!(
        (endpoint.as_deref(), query.as_deref(), scope.as_str()),
        (
            Some("http://127.0.0.1:8085"),
            Some("parent:organizations/1"),
            "org-1"
        )
    );
    assert_eq!(
        (page_size, deadline, timeout, retry_max),
        (7, secs(11), secs(3), secs(2))
    );
    assert_eq!(access_token.as_deref(), Some("ya29.env"));

    let SourceArgs::Azure(azure) = parse(&["azure"]) else {
        panic!("not azure")
    };
    let (scope, base) = azure.validate().expect("valid");
    assert_eq!(
        scope, "tenant-1",
        "AZURE_TENANT_ID when AZURE_SCOPE is unset"
    );
    assert_eq!(base.as_str(), "http://127.0.0.1:8086/");
    let AzureConfig {
        api_version,
        management_groups,
        token_scope,
        timeout,
        deadline,
        retry_max,
        client_id,
        access_token,
        ..
    } = azure;
    assert_eq!(
        (
            api_version.as_str(),
            management_groups,
            token_scope.as_str()
        ),
        ("2020-01-01", false, "api://arm/.default")
    );
    assert_eq!((timeout, deadline, retry_max), (secs(5), secs(6), secs(8)));
    assert_eq!(
        (client_id.as_deref(), access_token.as_deref()),
        (Some("client-1"), Some("t0k3n"))
    );

    // A bad value names its flag (the binary adds the variable, see src/cli.rs).
    std::env::set_var("GCP_PAGE_SIZE", "many");
    let err = Collect::try_parse_from(["collect", "gcp"]).unwrap_err();
    assert!(err.to_string().contains("--page-size"), "{err}");
    assert!(
        SourceArgs::from_env("grafana").expect("parses").is_some(),
        "GRAFANA_URL is set"
    );

    // The configured 1 s timeout is what a silent server meets, for both HTTP sources.
    for settings in [SourceArgs::Prometheus(prom), SourceArgs::Grafana(grafana)] {
        rt.block_on(async {
            let source = settings.build(Common::default()).await.expect("valid");
            let started = Instant::now();
            let collected = source.collect().await.expect("a silent endpoint is down");
            let took = started.elapsed();
            assert_eq!(collected.assets[0].status, AssetStatus::Down);
            assert!(
                took >= Duration::from_millis(900) && took < secs(5),
                "{}: {took:?}, not the configured 1 s",
                source.name()
            );
        });
    }
}
