//! `inventory-policy-check RENDERED.yaml...`: the Rego policies of asset-inventory, evaluated with
//! regorus (Microsoft's Rego interpreter; `opa` does not install from the registries this project
//! may use), as `make deploy-check` runs them:
//!
//! 1. unit tests: every `test_*` rule of every `policy/rego/*_test.rego` must be true (like
//!    `opa test`);
//! 2. the rendered manifests given on the command line must pass every policy (`data.main.deny`
//!    empty);
//! 3. every known-bad manifest in `policy/testdata/bad/` must be denied, each for its stated
//!    reason: its `# expect-deny: <text>` lines must each match a denial, and every denial must
//!    match one.
//!
//! Exits 1 when anything fails. Run from the repository root.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use regorus::{Engine, Value};

const REGO: &str = "policy/rego";
const BAD: &str = "policy/testdata/bad";

fn rego_files() -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(REGO)
        .with_context(|| format!("{REGO} (run from the repository root)"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rego"))
        .collect();
    files.sort();
    Ok(files)
}

fn is_test(p: &Path) -> bool {
    p.to_string_lossy().ends_with("_test.rego")
}

fn engine(with_tests: bool) -> anyhow::Result<Engine> {
    let mut e = Engine::new();
    for p in rego_files()? {
        if is_test(&p) && !with_tests {
            continue;
        }
        let text = std::fs::read_to_string(&p).with_context(|| p.display().to_string())?;
        e.add_policy(p.display().to_string(), text)
            .map_err(|err| anyhow::anyhow!("{}: {err}", p.display()))?;
    }
    Ok(e)
}

/// `package x.y` of a policy file.
fn package(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|l| l.strip_prefix("package "))
        .map(str::trim)
}

/// Names of the `test_*` rules defined in a test file.
fn test_names(text: &str) -> Vec<&str> {
    let mut names: Vec<&str> = text
        .lines()
        .filter_map(|l| {
            let name = l.split_whitespace().next()?;
            let rest = l[name.len()..].trim_start();
            (name.starts_with("test_") && rest.starts_with("if")).then_some(name)
        })
        .collect();
    names.dedup();
    names
}

fn unit_tests() -> anyhow::Result<(u32, u32)> {
    let mut e = engine(true)?;
    let (mut passed, mut failed) = (0, 0);
    for p in rego_files()?.into_iter().filter(|p| is_test(p)) {
        let text = std::fs::read_to_string(&p)?;
        let Some(pkg) = package(&text) else {
            bail!("{}: no package", p.display());
        };
        for name in test_names(&text) {
            let rule = format!("data.{pkg}.{name}");
            match e.eval_rule(rule.clone()) {
                Ok(Value::Bool(true)) => {
                    passed += 1;
                    println!("  PASS {pkg}.{name}");
                }
                Ok(other) => {
                    failed += 1;
                    println!("  FAIL {pkg}.{name}: {other}");
                }
                Err(err) => {
                    failed += 1;
                    println!("  FAIL {pkg}.{name}: {err}");
                }
            }
        }
    }
    Ok((passed, failed))
}

fn objects(text: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v: serde_json::Value = serde::Deserialize::deserialize(doc)?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

fn denials(e: &mut Engine, objects: Vec<serde_json::Value>) -> anyhow::Result<BTreeSet<String>> {
    let input = serde_json::json!({ "objects": objects });
    e.set_input_json(&input.to_string())
        .map_err(|err| anyhow::anyhow!("input: {err}"))?;
    let v = e
        .eval_rule("data.main.deny".to_owned())
        .map_err(|err| anyhow::anyhow!("data.main.deny: {err}"))?;
    let mut out = BTreeSet::new();
    match v {
        Value::Undefined => {}
        Value::Set(s) => {
            for m in s.iter() {
                out.insert(
                    m.as_string()
                        .map(|s| s.to_string())
                        .unwrap_or_else(|_| m.to_string()),
                );
            }
        }
        other => bail!("data.main.deny is not a set: {other}"),
    }
    Ok(out)
}

fn run() -> anyhow::Result<u32> {
    let mut problems = 0;
    println!("rego unit tests (regorus):");
    let (passed, failed) = unit_tests()?;
    println!("rego: {passed} passed, {failed} failed");
    problems += failed;
    if passed == 0 {
        eprintln!("rego: no unit test ran");
        problems += 1;
    }

    let mut e = engine(false)?;
    for f in std::env::args().skip(1) {
        let objs = objects(&std::fs::read_to_string(&f).with_context(|| f.clone())?)?;
        let n = objs.len();
        let denied = denials(&mut e, objs)?;
        if denied.is_empty() {
            println!("  PASS {f}: {n} objects, no denial");
        } else {
            problems += 1;
            println!("FAIL {f}: the project's own manifests are denied:");
            for m in denied {
                println!("    {m}");
            }
        }
    }

    let mut bad: Vec<PathBuf> = std::fs::read_dir(BAD)
        .with_context(|| BAD.to_owned())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    bad.sort();
    if bad.is_empty() {
        println!("FAIL: no known-bad manifests in {BAD}");
        problems += 1;
    }
    for f in bad {
        let text = std::fs::read_to_string(&f)?;
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect-deny:"))
            .map(str::trim)
            .collect();
        let denied = denials(&mut e, objects(&text)?)?;
        let missing: Vec<&&str> = expected
            .iter()
            .filter(|x| !denied.iter().any(|m| m.contains(**x)))
            .collect();
        let unexplained: Vec<&String> = denied
            .iter()
            .filter(|m| !expected.iter().any(|x| m.contains(x)))
            .collect();
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if expected.is_empty()
            || !missing.is_empty()
            || !unexplained.is_empty()
            || denied.is_empty()
        {
            problems += 1;
            println!("FAIL {name}: expected {expected:?}, denied {denied:?}");
            for x in missing {
                println!("    not denied for: {x}");
            }
            for m in unexplained {
                println!("    denied for another reason: {m}");
            }
        } else {
            println!("  PASS {name}: denied for {expected:?}");
        }
    }
    Ok(problems)
}

fn main() -> ExitCode {
    match run() {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("policy-check: {e:#}");
            ExitCode::FAILURE
        }
    }
}
