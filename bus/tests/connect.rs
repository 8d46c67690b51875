//! `NATS_URL` as a comma list of a cluster's servers, against a real nats-server: the client
//! connects through whichever server of the list answers.
#![allow(clippy::unwrap_used)]

use inventory_bus::{connect, NatsConfig};
use inventory_testkit::{free_port, NatsServer};

#[tokio::test]
async fn a_list_whose_first_server_is_down_connects_through_another() {
    let nats = NatsServer::start();
    let down = format!("nats://127.0.0.1:{}", free_port());
    for url in [
        format!("{down},{}", nats.url()),
        format!("{}, {down}", nats.url()),
    ] {
        let client = connect(&NatsConfig {
            url: url.clone(),
            name: "bus-connect-list".to_owned(),
            ..NatsConfig::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
        client.publish("probe", "x".into()).await.unwrap();
        client.flush().await.unwrap();
    }
}

#[tokio::test]
async fn a_list_of_servers_none_of_which_answers_is_an_error_naming_them() {
    let url = format!(
        "nats://127.0.0.1:{},nats://127.0.0.1:{}",
        free_port(),
        free_port()
    );
    let e = connect(&NatsConfig {
        url: url.clone(),
        ..NatsConfig::default()
    })
    .await
    .unwrap_err();
    assert!(e.to_string().contains(&url), "{e}");
}
