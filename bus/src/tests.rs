use super::*;

#[test]
fn the_duplicate_window_never_exceeds_the_retention() {
    let forever = stream_config(&StreamSettings::default());
    assert_eq!(forever.duplicate_window, Duration::from_secs(120));
    assert!(forever.deny_delete && forever.deny_purge && !forever.allow_rollup);
    let short = stream_config(&StreamSettings {
        max_age: Duration::from_secs(60),
        ..StreamSettings::default()
    });
    assert_eq!(short.duplicate_window, Duration::from_secs(60));
}

#[test]
fn a_comma_list_names_every_server_of_a_cluster() {
    let servers =
        server_addrs("nats://127.0.0.1:4222, nats://127.0.0.1:4223,127.0.0.1:4224").unwrap();
    let ports: Vec<u16> = servers.iter().map(ServerAddr::port).collect();
    assert_eq!(ports, [4222, 4223, 4224]);
    assert_eq!(server_addrs("nats://127.0.0.1:4222").unwrap().len(), 1);
}

#[test]
fn a_bad_list_is_refused_naming_the_server_without_its_password() {
    for (url, says) in [
        ("", "no server URL given"),
        (
            "nats://127.0.0.1:4222,,nats://127.0.0.1:4223",
            "server 2 of the list is empty",
        ),
        (
            "nats://127.0.0.1:4222,nats://u:secret@127.0.0.1:99999",
            "server 2 of the list",
        ),
    ] {
        let e = server_addrs(url).unwrap_err().to_string();
        assert!(e.contains(says), "{url}: {e}");
        assert!(!e.contains("secret"), "{e}");
    }
    assert_eq!(
        redact_url("nats://u:pw@a:4222,b:4222,tok@c:1"),
        "nats://***@a:4222,b:4222,***@c:1"
    );
}
