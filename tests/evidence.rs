//! Signed checkpoints against a real `nats-server -js` and the real `inventory` binary
//! (docs/audit.md §4): an untouched stream verifies; a copy rewritten as an administrator with
//! the server's files could (restored from a copy of the store, one payload changed from there
//! and every later chain recomputed) fails `verify --checkpoints`, naming the first differing
//! sequence, while its chains verify; inclusion proofs verify offline and fail when one byte of
//! the event changes; consistency proofs verify between two checkpoints and fail for a fork;
//! another key's signature fails; the signing key never shows in output.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/stream.rs"]
mod stream;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use inventory_testkit::NatsServer;
use rand::Rng as _;
use stream::{asset, Writer};

/// Runs `inventory <args>`: (exit code, stdout, stderr).
fn inv(url: &str, args: &[&str]) -> (i32, String, String) {
    let out = common::inventory(url)
        .args(args)
        .output()
        .expect("run inventory");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `inventory keygen` into `dir`: (signer key file, verifier key text).
fn keygen(dir: &Path) -> (PathBuf, String) {
    let (code, out, err) = inv("nats://127.0.0.1:1", &["keygen", "--out-dir", s(dir)]);
    assert_eq!(code, 0, "{out}{err}");
    let key = dir.join("checkpoint-signer.key");
    let verifier = out.lines().next().unwrap().trim().to_owned();
    assert_eq!(
        std::fs::read_to_string(dir.join("checkpoint-verifier.pub"))
            .unwrap()
            .trim(),
        verifier
    );
    (key, verifier)
}

/// The n-th event of the test history: 97 AWS accounts, each changed again and again.
fn nth(n: usize, tampered: bool) -> inventory_schemas::Asset {
    let name = if tampered {
        format!("v{n} (rewritten)")
    } else {
        format!("v{n}")
    };
    asset(
        &format!("{:012}", 100_000_000_000u64 + (n % 97) as u64),
        &name,
    )
}

async fn publish(w: &mut Writer, range: std::ops::Range<usize>, tamper_at: Option<usize>) {
    for n in range {
        let seq = w.upsert(&nth(n, Some(n) == tamper_at)).await;
        assert_eq!(seq, n as u64 + 1);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

fn streams_dir(store: &Path) -> PathBuf {
    store.join("jetstream").join("$G").join("streams")
}

fn checkpoint(url: &str, key: &Path, out: Option<&Path>) -> (i32, String) {
    let mut args = vec!["checkpoint", "--signing-key-file", s(key)];
    if let Some(o) = out {
        args.extend(["--out", s(o)]);
    }
    let (code, o, e) = inv(url, &args);
    (code, format!("{o}{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_verify_and_a_rewritten_copy_is_named_by_sequence() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, verifier) = keygen(&tmp.path().join("keys"));
    let (_, other) = keygen(&tmp.path().join("other-keys"));

    // The original stream: 300 events, then a copy of the server's store is taken (what an
    // administrator restores a rewrite from), then 300 more.
    let mut a = NatsServer::start();
    let mut w = Writer::connect(&a.url()).await;
    publish(&mut w, 0..300, None).await;
    let links_at_300 = w.last.clone();
    a.stop();
    let copy = tmp.path().join("store-at-300");
    copy_dir(&a.dir().join("store"), &copy);
    a.restart();
    let mut w = Writer::connect(&a.url()).await;
    w.last = links_at_300.clone();
    publish(&mut w, 300..450, None).await;

    // Two checkpoints, each also written to a file the auditor keeps.
    let cp1 = tmp.path().join("cp1.note");
    let (code, out) = checkpoint(&a.url(), &key, Some(&cp1));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("checkpoint signed: size 450"), "{out}");
    assert!(out.contains("with 1 new tiles"), "{out}");
    publish(&mut w, 450..600, None).await;
    let cp2 = tmp.path().join("cp2.note");
    let (code, out) = checkpoint(&a.url(), &key, Some(&cp2));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("checkpoint signed: size 600"), "{out}");
    assert!(out.contains("with 1 new tiles"), "{out}");
    let (code, out) = checkpoint(&a.url(), &key, None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("up to date"), "{out}");

    // The untouched stream verifies, from the evidence stream and from the files.
    let (code, out, err) = inv(&a.url(), &["verify", "--checkpoints", "--key", &verifier]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("verified checkpoints: 2 signed by asset-inventory/INVENTORY+"),
        "{out}"
    );
    assert!(out.contains("seqs 1..=600"), "{out}");
    let (code, out, err) = inv(
        &a.url(),
        &[
            "verify",
            "--checkpoints",
            "--key",
            &verifier,
            "--checkpoint-file",
            s(&cp1),
            "--checkpoint-file",
            s(&cp2),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("verified checkpoints: 4"), "{out}");
    // The key can be a file too.
    let (code, out, err) = inv(
        &a.url(),
        &[
            "verify",
            "--checkpoints",
            "--key",
            s(&tmp.path().join("keys/checkpoint-verifier.pub")),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    // Checkpoints signed by another key are refused.
    let (code, out, _) = inv(&a.url(), &["verify", "--checkpoints", "--key", &other]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("not validly signed by the given key"), "{out}");

    // The rewrite: the store copied at 300 events, event 301 with other data, every later
    // event re-chained on it by the honest writer code (so the per-asset chains hold).
    let mut b = NatsServer::start_with_args(&["-sd", s(&copy)]);
    let mut wb = Writer::connect(&b.url()).await;
    wb.last = links_at_300;
    publish(&mut wb, 300..600, Some(300)).await;
    let (code, _, err) = inv(&b.url(), &["verify"]);
    assert_eq!(code, 0, "the rewrite's chains are consistent: {err}");

    // C: the rewritten stream with the original's evidence stream beside it.
    b.stop();
    let c_store = tmp.path().join("store-c");
    copy_dir(&copy, &c_store);
    a.stop();
    copy_dir(
        &streams_dir(&a.dir().join("store")).join("INVENTORY_EVIDENCE"),
        &streams_dir(&c_store).join("INVENTORY_EVIDENCE"),
    );
    a.restart();
    b.restart();
    let c = NatsServer::start_with_args(&["-sd", s(&c_store)]);
    let (code, out, err) = inv(&c.url(), &["verify", "--checkpoints", "--key", &verifier]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        out.starts_with(
            "verify FAILED: seq 301 (subject inventory.asset.aws.account.100000000009)"
        ),
        "{out}"
    );
    assert!(out.contains("size 450"), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    // With the auditor's file as well.
    let (code, out, _) = inv(
        &c.url(),
        &[
            "verify",
            "--checkpoints",
            "--key",
            &verifier,
            "--checkpoint-file",
            s(&cp1),
        ],
    );
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("seq 301 "), "{out}");
    // The checkpointer refuses to sign the rewrite.
    let (code, out) = checkpoint(&c.url(), &key, None);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("checkpoint REFUSED: the stream no longer matches the newest checkpoint"),
        "{out}"
    );

    // B: the rewrite signed with the same (stolen) key. The auditor's checkpoint file from the
    // original does not verify against it, and no consistency proof links the two.
    let (code, out) = checkpoint(&b.url(), &key, None);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = inv(
        &b.url(),
        &[
            "verify",
            "--checkpoints",
            "--key",
            &verifier,
            "--checkpoint-file",
            s(&cp1),
        ],
    );
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("verify FAILED: seq 1..=450"), "{out}");
    let fork_proof = tmp.path().join("fork.json");
    let (code, out, err) = inv(
        &b.url(),
        &[
            "prove",
            "--consistency-from",
            s(&cp1),
            "--out",
            s(&fork_proof),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = inv(
        "nats://127.0.0.1:1",
        &["verify-proof", "--key", &verifier, s(&fork_proof)],
    );
    assert_eq!(code, 3, "{out}");
    assert!(out.starts_with("proof FAILED"), "{out}");

    // On the original, the consistency proof from the first checkpoint to the newest verifies.
    let proof = tmp.path().join("consistency.json");
    let (code, out, err) = inv(
        &a.url(),
        &["prove", "--consistency-from", s(&cp1), "--out", s(&proof)],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = inv(
        "nats://127.0.0.1:1",
        &["verify-proof", "--key", &verifier, s(&proof)],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("the tree of 600 messages"), "{out}");
    assert!(out.contains("extends the tree of 450 messages"), "{out}");
    let (code, out, _) = inv(
        "nats://127.0.0.1:1",
        &["verify-proof", "--key", &other, s(&proof)],
    );
    assert_eq!(code, 3, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inclusion_proof_verifies_offline_and_fails_if_one_byte_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, verifier) = keygen(tmp.path());
    let nats = NatsServer::start();
    let mut w = Writer::connect(&nats.url()).await;
    publish(&mut w, 0..300, None).await;
    let cp = tmp.path().join("cp.note");
    assert_eq!(checkpoint(&nats.url(), &key, Some(&cp)).0, 0);
    publish(&mut w, 300..310, None).await;

    let mut rng = rand::thread_rng();
    let seq: u64 = rng.gen_range(1..=300);
    let proof = tmp.path().join("proof.json");
    let (code, out, err) = inv(
        &nats.url(),
        &["prove", &seq.to_string(), "--out", s(&proof)],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = inv(
        "nats://127.0.0.1:1",
        &["verify-proof", "--key", &verifier, s(&proof)],
    );
    assert_eq!(code, 0, "seq {seq}: {out}");
    assert!(
        out.contains(&format!(
            "message {seq} (subject inventory.asset.aws.account."
        )),
        "{out}"
    );
    assert!(out.contains("of the tree of 300 messages"), "{out}");

    // The proof carries the event as stored; one changed byte anywhere in it fails.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&proof).unwrap()).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = b64
        .decode(json["message"]["payload_base64"].as_str().unwrap())
        .unwrap();
    let event: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    let ty = if seq <= 97 { "discovered" } else { "changed" };
    assert_eq!(
        event["type"],
        format!("io.companyos.inventory.asset.{ty}.v1")
    );
    for _ in 0..3 {
        let mut changed = payload.clone();
        let at = rng.gen_range(0..changed.len());
        changed[at] ^= 1 << rng.gen_range(0..8);
        let mut bad = json.clone();
        bad["message"]["payload_base64"] = b64.encode(&changed).into();
        let bad_file = tmp.path().join("bad.json");
        std::fs::write(&bad_file, serde_json::to_vec(&bad).unwrap()).unwrap();
        let (code, out, _) = inv(
            "nats://127.0.0.1:1",
            &["verify-proof", "--key", &verifier, s(&bad_file)],
        );
        assert_eq!(code, 3, "byte {at} changed: {out}");
        assert!(out.starts_with("proof FAILED"), "{out}");
    }
    let mut bad = json.clone();
    bad["message"]["recorded_at_nanos"] =
        (json["message"]["recorded_at_nanos"].as_i64().unwrap() + 1).into();
    let bad_file = tmp.path().join("bad-time.json");
    std::fs::write(&bad_file, serde_json::to_vec(&bad).unwrap()).unwrap();
    assert_eq!(
        inv(
            "nats://127.0.0.1:1",
            &["verify-proof", "--key", &verifier, s(&bad_file)]
        )
        .0,
        3
    );

    // Against the auditor's checkpoint file; a message after the checkpoint is not covered.
    let (code, out, err) = inv(
        &nats.url(),
        &[
            "prove",
            "1",
            "--checkpoint-file",
            s(&cp),
            "--out",
            s(&proof),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        inv(
            "nats://127.0.0.1:1",
            &["verify-proof", "--key", &verifier, s(&proof)]
        )
        .0,
        0
    );
    let (code, _, err) = inv(&nats.url(), &["prove", "305"]);
    assert_eq!(code, 1);
    assert!(err.contains("not covered by the checkpoint"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signing_key_never_shows_and_is_never_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, _) = keygen(tmp.path());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let secret = std::fs::read_to_string(&key).unwrap();
    // PRIVATE+KEY+NAME+KEYID+KEY: the key's base64 may itself contain '+'.
    let secret_b64 = secret.trim().splitn(5, '+').nth(4).unwrap().to_owned();
    assert!(secret_b64.len() > 40, "{secret_b64}");
    // keygen refuses to replace it.
    let (code, _, err) = inv(
        "nats://127.0.0.1:1",
        &["keygen", "--out-dir", s(tmp.path())],
    );
    assert_eq!(code, 1);
    assert!(err.contains("refusing to replace a signing key"), "{err}");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), secret);

    // A checkpoint with every log level on: the key appears nowhere.
    let nats = NatsServer::start();
    let mut w = Writer::connect(&nats.url()).await;
    publish(&mut w, 0..20, None).await;
    let out = common::inventory(&nats.url())
        .env("INVENTORY_LOG", "trace")
        .args(["checkpoint", "--signing-key-file", s(&key)])
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    assert!(
        !all.contains(&secret_b64[..16]),
        "the signing key was printed"
    );

    // Bad key files: the error names the file and the problem, never the content.
    let key_id = secret.split('+').nth(3).unwrap().to_owned();
    for (name, content) in [
        ("wrong-id.key", secret.replacen(&key_id, "00000000", 1)),
        ("not-a-key.key", format!("{secret_b64}\n")),
        (
            "truncated.key",
            secret.trim()[..secret.trim().len() - 6].to_owned(),
        ),
    ] {
        let path = tmp.path().join(name);
        std::fs::write(&path, &content).unwrap();
        let (code, o, e) = inv(&nats.url(), &["checkpoint", "--signing-key-file", s(&path)]);
        assert_eq!(code, 1, "{o}{e}");
        assert!(
            e.contains(&format!("signing key file {}", path.display())),
            "{e}"
        );
        assert!(e.contains("malformed signer key"), "{e}");
        assert!(!format!("{o}{e}").contains(&secret_b64[..16]), "{e}");
    }
    let (code, _, e) = inv(
        &nats.url(),
        &[
            "checkpoint",
            "--signing-key-file",
            s(&tmp.path().join("missing.key")),
        ],
    );
    assert_eq!(code, 1);
    assert!(e.contains("missing.key"), "{e}");
}
