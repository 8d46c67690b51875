//! `inventory keygen`: an Ed25519 key pair for signing checkpoints, in the C2SP signed-note key
//! formats. The signer key file is created with mode 0600 and never overwritten.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use inventory_evidence::Signer;
use rand::RngCore as _;
use tracing::info;

use crate::cli::KeygenArgs;

/// File name of the signer key in `--out-dir`.
pub const SIGNER_FILE: &str = "checkpoint-signer.key";
/// File name of the verifier key in `--out-dir`.
pub const VERIFIER_FILE: &str = "checkpoint-verifier.pub";

/// A new signer from 32 bytes of the operating system's randomness.
fn generate(name: &str) -> anyhow::Result<Signer> {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut seed)
        .context("reading the operating system's random numbers")?;
    let signer = Signer::from_seed(name, seed);
    seed.fill(0);
    Ok(signer?)
}

/// Writes a new key pair into `dir`; returns (signer path, verifier key text). Refuses to
/// replace an existing signer key.
pub fn write_pair(dir: &Path, name: &str) -> anyhow::Result<(PathBuf, String)> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let signer = generate(name)?;
    let (key_path, pub_path) = (dir.join(SIGNER_FILE), dir.join(VERIFIER_FILE));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(&key_path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!(
                "{} exists: refusing to replace a signing key",
                key_path.display()
            )
        } else {
            anyhow::anyhow!("create {}: {e}", key_path.display())
        }
    })?;
    f.write_all(format!("{}\n", signer.key_text()).as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("write {}", key_path.display()))?;
    let verifier = signer.verifier().key_text();
    std::fs::write(&pub_path, format!("{verifier}\n"))
        .with_context(|| format!("write {}", pub_path.display()))?;
    info!(signer = %key_path.display(), verifier = %pub_path.display(), key = %verifier, "checkpoint key pair written");
    Ok((key_path, verifier))
}

/// The signer key file `inventory up` uses: DATA/checkpoint-signer.key, generated on first start.
pub fn ensure_local(data: &Path) -> anyhow::Result<PathBuf> {
    let path = data.join(SIGNER_FILE);
    if !path.exists() {
        write_pair(data, &crate::evidence::default_origin())?;
    }
    Ok(path)
}

/// `inventory keygen`.
pub fn run(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    let (key_path, verifier) = write_pair(&args.out_dir, &args.name)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{verifier}").context("writing to stdout")?;
    writeln!(
        out,
        "# signer key (secret, mode 0600): {}\n# verifier key (public): {}",
        key_path.display(),
        args.out_dir.join(VERIFIER_FILE).display()
    )
    .context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}
