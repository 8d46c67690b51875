//! The bus under NATS permissions shaped like infra/nats/auth.conf's (the shipped file itself is
//! tested by tests/deploy/nats_permissions.py): a reader allowed to create consumers only through
//! the filtered subject `$JS.API.CONSUMER.CREATE.INVENTORY.*.<its subjects>`, and not allowed to
//! create the stream, against a real nats-server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use inventory_bus::{ensure_stream, last_per_subject, BusError, NatsConfig, StreamSettings};
use inventory_testkit::NatsServer;

const CONF: &str = r#"
authorization {
  users = [
    { user: "admin", password: "admin-pw" }
    {
      user: "collector-aws"
      password: "aws-pw"
      permissions: {
        publish: {
          allow: [
            "inventory.asset.aws.>",
            "$JS.API.STREAM.INFO.INVENTORY",
            "$JS.API.CONSUMER.CREATE.INVENTORY.*.inventory.asset.aws.>",
            "$JS.API.CONSUMER.INFO.INVENTORY.*", "$JS.API.CONSUMER.MSG.NEXT.INVENTORY.*"
          ]
        }
        subscribe: { allow: ["_INBOX.>"] }
      }
    }
  ]
}
"#;

fn server() -> (NatsServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nats.conf");
    std::fs::write(&conf, CONF).unwrap();
    let nats = NatsServer::start_with_args(&["-c", conf.to_str().unwrap()]);
    (nats, dir)
}

async fn js(nats: &NatsServer, user: &str, password: &str) -> async_nats::jetstream::Context {
    let client = inventory_bus::connect(&NatsConfig {
        url: nats.url(),
        user: Some(user.to_owned()),
        password: Some(password.to_owned()),
        name: format!("bus-permissions-{user}"),
        ..NatsConfig::default()
    })
    .await
    .unwrap();
    async_nats::jetstream::new(client)
}

/// A collector started before the stream exists waits for it (its own create is refused), and
/// goes on with the stream the API created once there is one.
#[tokio::test]
async fn an_identity_that_may_not_create_the_stream_waits_for_it() {
    let (nats, _conf) = server();
    let collector = js(&nats, "collector-aws", "aws-pw").await;
    let started = Instant::now();
    let waiting =
        tokio::spawn(async move { ensure_stream(&collector, &StreamSettings::default()).await });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !waiting.is_finished(),
        "the collector must not find or create a stream that does not exist"
    );
    // The API creates it, recognisably (a retention the collector would not ask for).
    let admin = js(&nats, "admin", "admin-pw").await;
    let api_settings = StreamSettings {
        max_age: Duration::from_secs(3600),
        ..StreamSettings::default()
    };
    ensure_stream(&admin, &api_settings).await.unwrap();
    let mut stream = tokio::time::timeout(Duration::from_secs(90), waiting)
        .await
        .expect("the collector keeps waiting after the stream was created")
        .unwrap()
        .expect("the collector uses the stream the API created");
    let info = stream.info().await.unwrap();
    assert_eq!(info.config.max_age, Duration::from_secs(3600));
    assert!(started.elapsed() < inventory_bus::STREAM_WAIT);
}

/// The newest event per subject is read through a named ordered consumer created with its
/// filter in the API subject, which is all the collector may create; another provider's
/// subjects cannot be read.
#[tokio::test]
async fn a_collector_reads_its_own_subjects_and_no_others() {
    let (nats, _conf) = server();
    let admin = js(&nats, "admin", "admin-pw").await;
    ensure_stream(&admin, &StreamSettings::default())
        .await
        .unwrap();
    for (subject, body) in [
        ("inventory.asset.aws.account.111111111111", "a1"),
        ("inventory.asset.aws.account.111111111111", "a2"),
        ("inventory.asset.aws.account.222222222222", "b1"),
        ("inventory.asset.gcp.project.p", "g1"),
    ] {
        admin
            .publish(subject, body.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    let collector = js(&nats, "collector-aws", "aws-pw").await;
    let stream = ensure_stream(&collector, &StreamSettings::default())
        .await
        .unwrap();
    let newest = last_per_subject(&stream, "inventory.asset.aws.account.*")
        .await
        .unwrap();
    let got: Vec<(&str, &[u8])> = newest
        .iter()
        .map(|m| (m.subject.as_str(), m.payload.as_ref()))
        .collect();
    assert_eq!(
        got,
        [
            ("inventory.asset.aws.account.111111111111", &b"a2"[..]),
            ("inventory.asset.aws.account.222222222222", &b"b1"[..]),
        ]
    );
    let one = last_per_subject(&stream, "inventory.asset.aws.account.222222222222")
        .await
        .unwrap();
    assert_eq!(one.len(), 1);

    let err = last_per_subject(&stream, "inventory.asset.gcp.>")
        .await
        .expect_err("another provider's subjects must not be readable");
    assert!(matches!(err, BusError::Read { .. }), "{err}");
}
