//! The plug-in author's tools: `civic plugin new | build | run | test | deploy`, with the
//! same runtime, limits and directory checks as the server.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::directory::{Directory, SAMPLE_CATEGORIES, SAMPLE_DIRECTORY};
use crate::dryrun::{self, Request};
use crate::golden;
use crate::intake::NewCase;
use crate::runtime::{Hook, Limits, Runtime, RuntimeConfig};
use crate::scaffold::{CONTRACT_WIT, Lang};

/// `civic plugin ...`
#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Scaffold a plug-in with a passing native test and a golden fixture.
    New {
        /// Plug-in name (also the folder created).
        name: String,
        /// Where to create it (default: the current directory).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The language it is written in.
        #[arg(long, value_enum, default_value_t = Lang::Rust)]
        lang: Lang,
        /// Start from this district's rules as the city runs them today (Rust): change one
        /// rule and the rest stand.
        #[arg(long)]
        district: Option<String>,
    },
    /// Build a plug-in into a Wasm component: a Rust crate with cargo, a Python one (a
    /// folder with an `app.py`) with componentize-py, a JavaScript one (an `app.js`) with
    /// componentize-js.
    Build {
        /// The plug-in's Cargo.toml, or its `app.py` or `app.js` (default: `Cargo.toml`, or
        /// the `app.py` / `app.js` of a folder with no `Cargo.toml`).
        #[arg(long, default_value = "Cargo.toml")]
        manifest_path: PathBuf,
        /// Where to write the component (default: `<crate>.wasm` beside the manifest).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Cargo target directory for the Wasm build (default: `CARGO_TARGET_DIR`, else
        /// `target` beside the manifest).
        #[arg(long, env = "CARGO_TARGET_DIR")]
        target_dir: Option<PathBuf>,
    },
    /// Evaluate one hook on one case and print the decision, reasons, fuel and time.
    Run {
        /// The component.
        #[arg(long)]
        plugin: PathBuf,
        /// `eligibility`, `routing` or `escalation`.
        #[arg(long)]
        hook: Hook,
        /// A case as at intake (JSON), or a dry-run request `{"case": ..., "timer": ...}`.
        #[arg(long)]
        case: PathBuf,
        /// Directory, limits, configuration.
        #[command(flatten)]
        env: EnvArgs,
    },
    /// Run golden fixtures; exits non-zero on a mismatch, showing expected against actual.
    Test {
        /// The component.
        #[arg(long)]
        plugin: PathBuf,
        /// A folder of `*.json` fixtures.
        #[arg(long)]
        fixtures: PathBuf,
        /// Directory, limits, configuration.
        #[command(flatten)]
        env: EnvArgs,
    },
    /// Upload a built plug-in to a server, optionally activating it.
    Deploy {
        /// The component.
        #[arg(long)]
        plugin: PathBuf,
        /// The server, `http://host:port`.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
        /// A district-admin (or city-admin) token.
        #[arg(long, env = "CIVIC_TOKEN", hide_env_values = true)]
        token: String,
        /// The district, or `city` for the city default.
        #[arg(long)]
        district: String,
        /// The hook.
        #[arg(long)]
        hook: Hook,
        /// A name for the version.
        #[arg(long)]
        name: Option<String>,
        /// Activate it after upload.
        #[arg(long)]
        activate: bool,
    },
}

/// The directory, limits and configuration a plug-in runs with.
#[derive(Args, Debug, Clone, Default)]
pub struct EnvArgs {
    /// Directory JSON (default: the bundled sample city).
    #[arg(long)]
    directory: Option<PathBuf>,
    /// Categories JSON (default: the bundled sample city's).
    #[arg(long)]
    categories: Option<PathBuf>,
    /// Fuel budget.
    #[arg(long)]
    fuel: Option<u64>,
    /// Deadline in milliseconds.
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Memory cap in bytes.
    #[arg(long)]
    memory_bytes: Option<u64>,
    /// The plug-in's configuration string (default `{}`).
    #[arg(long)]
    config: Option<String>,
}

/// Runs a `civic plugin` command.
pub fn run(cmd: PluginCommand) -> anyhow::Result<()> {
    match cmd {
        PluginCommand::New {
            name,
            dir,
            lang,
            district,
        } => crate::scaffold::create(&name, &dir, lang, district.as_deref()),
        PluginCommand::Build {
            manifest_path,
            out,
            target_dir,
        } => build(&manifest_path, out, target_dir),
        PluginCommand::Run {
            plugin,
            hook,
            case,
            env,
        } => run_one(&plugin, hook, &case, &env),
        PluginCommand::Test {
            plugin,
            fixtures,
            env,
        } => test(&plugin, &fixtures, &env),
        PluginCommand::Deploy {
            plugin,
            server,
            token,
            district,
            hook,
            name,
            activate,
        } => deploy(&plugin, &server, &token, &district, hook, name, activate),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Loads the component with the server's runtime and limits.
fn load(
    plugin: &Path,
    env: &EnvArgs,
) -> anyhow::Result<(Runtime, Arc<crate::runtime::Plugin>, Arc<Directory>)> {
    let bytes = std::fs::read(plugin).with_context(|| format!("reading {}", plugin.display()))?;
    let runtime = Runtime::new(RuntimeConfig::default())?;
    let limits =
        Limits::for_component(&bytes).overridden(env.fuel, env.timeout_ms, env.memory_bytes);
    let name = plugin
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into());
    let loaded = runtime.load(&name, &bytes, limits, env.config.as_deref().unwrap_or("{}"))?;
    let read = |p: &Option<PathBuf>, default: &str| -> anyhow::Result<String> {
        match p {
            Some(p) => {
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
            }
            None => Ok(default.to_owned()),
        }
    };
    let directory = Directory::from_json(
        1,
        &read(&env.directory, SAMPLE_DIRECTORY)?,
        &read(&env.categories, SAMPLE_CATEGORIES)?,
    )?;
    Ok((runtime, loaded, Arc::new(directory)))
}

fn read_request(path: &Path) -> anyhow::Result<Request> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    if v.get("case").is_some() {
        Ok(serde_json::from_value(v)
            .with_context(|| format!("{} is not a dry-run request", path.display()))?)
    } else {
        let case: NewCase = serde_json::from_value(v)
            .with_context(|| format!("{} is not a case", path.display()))?;
        Ok(Request {
            case,
            now: None,
            eligibility: None,
            handler: None,
            timer: None,
            returned_by: vec![],
            version: None,
        })
    }
}

fn run_one(plugin: &Path, hook: Hook, case: &Path, env: &EnvArgs) -> anyhow::Result<()> {
    let (runtime, loaded, dir) = load(plugin, env)?;
    let req = read_request(case)?;
    let out = dryrun::evaluate(
        &runtime,
        &dir,
        &loaded,
        Some(&loaded),
        hook,
        &req,
        now_ms(),
        "cli",
    )?;
    println!("plugin:   {}", out.plugin);
    println!("hook:     {}", hook.as_str());
    if let Some(f) = &out.failure {
        println!("failure:  {}", f.message);
        println!("detail:   {}", serde_json::to_string(&f.detail)?);
        println!("fuel:     {}", out.fuel_used);
        println!("time:     {} µs", out.duration_us);
        bail!("the plug-in failed ({})", f.code);
    }
    println!("decision: {}", serde_json::to_string_pretty(&out.decision)?);
    println!("reasons:  {}", out.reasons.join(", "));
    println!("fuel:     {}", out.fuel_used);
    println!("time:     {} µs", out.duration_us);
    if let Some(log) = out.log.filter(|l| !l.lines.is_empty() || l.dropped > 0) {
        for l in &log.lines {
            println!("log:      [{}] {}", l.level, l.message);
        }
        if log.dropped > 0 {
            println!("log:      ({} lines dropped)", log.dropped);
        }
    }
    Ok(())
}

/// Runs every fixture in `fixtures` against `plugin`; returns the number of failures.
pub fn run_fixtures(
    plugin: &Path,
    fixtures: &Path,
    env: &EnvArgs,
    out: &mut impl std::io::Write,
) -> anyhow::Result<usize> {
    let (runtime, loaded, dir) = load(plugin, env)?;
    let list = golden::load_dir(fixtures).map_err(anyhow::Error::msg)?;
    let mut failed = 0;
    for (path, f) in &list {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let outcome = dryrun::evaluate(
            &runtime,
            &dir,
            &loaded,
            Some(&loaded),
            f.hook,
            &f.request,
            f.request.now.unwrap_or(1_796_000_400_000),
            "cli",
        )
        .with_context(|| format!("fixture {name}"))?;
        let mismatches = golden::check(f, &outcome);
        if mismatches.is_empty() {
            writeln!(out, "ok    {name} ({} fuel)", outcome.fuel_used)?;
        } else {
            failed += 1;
            writeln!(out, "FAIL  {name}: {}", f.description)?;
            for m in mismatches {
                writeln!(out, "      {m}")?;
            }
        }
    }
    writeln!(out, "{} passed, {failed} failed", list.len() - failed)?;
    Ok(failed)
}

fn test(plugin: &Path, fixtures: &Path, env: &EnvArgs) -> anyhow::Result<()> {
    let failed = run_fixtures(plugin, fixtures, env, &mut std::io::stdout())?;
    if failed > 0 {
        bail!("{failed} fixture(s) did not match");
    }
    Ok(())
}

fn build(manifest: &Path, out: Option<PathBuf>, target_dir: Option<PathBuf>) -> anyhow::Result<()> {
    // `Cargo.toml` is the default; where there is none, the folder's `app.py` or `app.js`.
    let manifest = if manifest == Path::new("Cargo.toml") && !manifest.exists() {
        ["app.py", "app.js"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .unwrap_or_else(|| manifest.to_owned())
    } else {
        manifest.to_owned()
    };
    let manifest = manifest
        .canonicalize()
        .with_context(|| format!("{} not found", manifest.display()))?;
    let root = manifest
        .parent()
        .context("the manifest has no folder")?
        .to_owned();
    let file = manifest
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let (name, component) = if file.ends_with(".py") || file.ends_with(".js") {
        let lang = if file.ends_with(".py") {
            Lang::Python
        } else {
            Lang::Js
        };
        let app = lang.app_file().unwrap_or_default();
        if file != app {
            bail!(
                "{}: a plug-in's module is `{app}` (the build tool builds that module); rename it",
                manifest.display()
            );
        }
        // The contract comes from this binary, so what is built is what this host speaks.
        let wit = tempfile::tempdir().context("creating a folder for the contract")?;
        std::fs::write(wit.path().join("rules.wit"), CONTRACT_WIT)?;
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plugin".into());
        let component = match lang {
            Lang::Python => civic_guest_build::python::build(&root, wit.path())?,
            _ => civic_guest_build::js::build(&root, wit.path())?,
        };
        (name, component)
    } else {
        let name = civic_guest_build::read_manifest(&manifest)?.name;
        let built = civic_guest_build::build(&civic_guest_build::Request {
            manifest_path: manifest.clone(),
            packages: vec![name.clone()],
            target_dir: target_dir.unwrap_or_else(|| root.join("target")),
            layout: civic_guest_build::Layout::default(),
        })?;
        let component = built
            .into_iter()
            .next()
            .context("cargo built nothing")?
            .component;
        (name, component)
    };
    let out = out.unwrap_or_else(|| root.join(format!("{name}.wasm")));
    std::fs::write(&out, &component).with_context(|| format!("writing {}", out.display()))?;
    // Check it the way the server will.
    let runtime = Runtime::new(RuntimeConfig::default())?;
    let limits = Limits::for_component(&component);
    let loaded = runtime.load(&name, &component, limits, "{}")?;
    println!(
        "built {} ({} bytes, version {}; default limits: {} fuel, {} ms, {} MiB)",
        out.display(),
        component.len(),
        loaded.id().version,
        limits.fuel,
        limits.timeout.as_millis(),
        limits.memory_bytes >> 20
    );
    Ok(())
}

fn deploy(
    plugin: &Path,
    server: &str,
    token: &str,
    district: &str,
    hook: Hook,
    name: Option<String>,
    activate: bool,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(plugin).with_context(|| format!("reading {}", plugin.display()))?;
    let name = name.unwrap_or_else(|| {
        plugin
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let path = format!(
        "/v1/districts/{district}/plugins/{}?name={}",
        hook.as_str(),
        encode(&name)
    );
    let (mut status, mut body) = http(server, "PUT", &path, token, "application/wasm", &bytes)?;
    if status == 202 {
        // Still compiling on the server: wait for its final answer.
        let url = body["status_url"].as_str().unwrap_or_default().to_owned();
        eprintln!("compiling on the server…");
        loop {
            std::thread::sleep(std::time::Duration::from_millis(500));
            let (s, b) = http(server, "GET", &url, token, "application/json", b"")?;
            if s != 200 {
                bail!("could not read the upload's answer ({s}): {}", message(&b));
            }
            match b["status"].as_str() {
                Some("compiling") => continue,
                Some("accepted") => {
                    (status, body) = (201, b["record"].clone());
                    break;
                }
                _ => bail!(
                    "upload refused: {}",
                    b["reason"].as_str().unwrap_or("no reason given")
                ),
            }
        }
    }
    if !(200..300).contains(&status) {
        bail!("upload refused ({status}): {}", message(&body));
    }
    let version = body["version"].as_str().unwrap_or_default().to_owned();
    println!(
        "{} version {version} for {district}/{}",
        if status == 201 {
            "deployed"
        } else {
            "already deployed:"
        },
        hook.as_str()
    );
    if activate {
        let path = format!(
            "/v1/districts/{district}/plugins/{}/versions/{version}/activate",
            hook.as_str()
        );
        let (status, body) = http(server, "POST", &path, token, "application/json", b"{}")?;
        if status != 200 {
            bail!("activation refused ({status}): {}", message(&body));
        }
        println!("activated {version}");
        print_replaced(&body["replaced"]);
    }
    Ok(())
}

/// `civic replay`: asks the server to replay a case's decisions and prints the verdicts.
pub fn replay(case: &str, server: &str, token: &str) -> anyhow::Result<()> {
    let (status, body) = http(
        server,
        "GET",
        &format!("/v1/cases/{}/replay", encode(case)),
        token,
        "application/json",
        b"",
    )?;
    if status != 200 {
        bail!("replay refused ({status}): {}", message(&body));
    }
    for d in body["decisions"].as_array().into_iter().flatten() {
        let verdict = if d["identical"] == true {
            "identical".to_string()
        } else {
            format!("DIFFERENT at {}", d["differences"])
        };
        println!(
            "#{:<3} {:<11} {} @{} dir v{}: {verdict}",
            d["seq"],
            d["hook"].as_str().unwrap_or(""),
            d["plugin"].as_str().unwrap_or(""),
            &d["version"].as_str().unwrap_or("")
                [..12.min(d["version"].as_str().unwrap_or("").len())],
            d["directory_version"]
        );
        if d["identical"] != true {
            println!("     recorded: {}", d["recorded"]);
            println!("     replayed: {}", d["replayed"]);
        }
    }
    if body["identical"] != true {
        bail!("case {case}: some decisions replay differently");
    }
    println!("case {case}: every decision replays identically");
    Ok(())
}

/// What `civic backtest` needs.
#[derive(Debug, Clone)]
pub struct BacktestArgs {
    /// The district.
    pub district: String,
    /// The hook.
    pub hook: Hook,
    /// The candidate version.
    pub version: String,
    /// Range start.
    pub from: Option<i64>,
    /// Range end.
    pub to: Option<i64>,
    /// Number of slices.
    pub slices: u32,
    /// The server.
    pub server: String,
    /// The token.
    pub token: String,
}

/// Says what an activation replaced and how the two versions decide the newest past cases.
fn print_replaced(r: &serde_json::Value) {
    if r.is_null() {
        return;
    }
    println!(
        "it replaces {} ({}){}",
        r["name"].as_str().unwrap_or(""),
        r["version"].as_str().unwrap_or("").get(..12).unwrap_or(""),
        if r["city_default"] == true {
            ", the city default standing in"
        } else {
            ""
        }
    );
    let c = &r["compared"];
    if c.is_null() {
        println!(
            "  not compared: {}",
            r["not_compared"].as_str().unwrap_or("")
        );
        return;
    }
    println!(
        "  on the newest {} past cases, {} are decided differently{}",
        c["evaluated"],
        c["changed"],
        if c["changed"] == 0 { "" } else { ":" }
    );
    for (k, v) in c["changes"].as_object().into_iter().flatten() {
        println!("  {v:>6}  {k}");
    }
}

/// `civic backtest`: runs the server's backtest slice by slice with a progress bar, and
/// prints the combined report.
pub fn backtest(a: &BacktestArgs) -> anyhow::Result<()> {
    let to = a.to.unwrap_or_else(now_ms);
    let from = a.from.unwrap_or(to - 30 * 86_400_000);
    if from >= to {
        bail!("--from must be before --to");
    }
    let slices = a.slices.clamp(1, 1000) as i64;
    let step = ((to - from) / slices).max(1);
    let bar = indicatif::ProgressBar::new(slices as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} slices {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let (mut cases, mut evaluated, mut changed) = (0u64, 0u64, 0u64);
    let mut changes: std::collections::BTreeMap<String, u64> = Default::default();
    let mut by_kind: std::collections::BTreeMap<String, u64> = Default::default();
    let (mut samples, mut failures) = (Vec::new(), Vec::new());
    let (mut fuel_a, mut fuel_c) = (0u64, 0u64);
    let started = std::time::Instant::now();
    let mut start = from;
    while start < to {
        let end = (start + step).min(to);
        let body = serde_json::json!({"version": a.version, "from": start, "to": end, "sample": 5})
            .to_string();
        let path = format!(
            "/v1/districts/{}/plugins/{}/backtest",
            a.district,
            a.hook.as_str()
        );
        let (status, r) = http(
            &a.server,
            "POST",
            &path,
            &a.token,
            "application/json",
            body.as_bytes(),
        )?;
        if status != 200 {
            bar.abandon();
            bail!("backtest refused ({status}): {}", message(&r));
        }
        cases += r["cases"].as_u64().unwrap_or(0);
        evaluated += r["evaluated"].as_u64().unwrap_or(0);
        changed += r["changed"].as_u64().unwrap_or(0);
        for (k, v) in r["changes"].as_object().into_iter().flatten() {
            *changes.entry(k.clone()).or_default() += v.as_u64().unwrap_or(0);
        }
        for (k, v) in r["by_kind"].as_object().into_iter().flatten() {
            *by_kind.entry(k.clone()).or_default() += v.as_u64().unwrap_or(0);
        }
        samples.extend(r["sample"].as_array().cloned().unwrap_or_default());
        failures.extend(r["failures"].as_array().cloned().unwrap_or_default());
        fuel_a = fuel_a.max(r["fuel_active"]["max"].as_u64().unwrap_or(0));
        fuel_c = fuel_c.max(r["fuel_candidate"]["max"].as_u64().unwrap_or(0));
        bar.set_message(format!("{evaluated} cases"));
        bar.inc(1);
        start = end;
    }
    bar.finish();
    let secs = started.elapsed().as_secs_f64();
    println!("{cases} cases in range, {evaluated} evaluated in {secs:.1} s, {changed} changed");
    if !by_kind.is_empty() {
        let kinds: Vec<String> = by_kind.iter().map(|(k, v)| format!("{v} {k}")).collect();
        println!("  changes: {}", kinds.join(", "));
    }
    for (k, v) in &changes {
        println!("  {v:>6}  {k}");
    }
    // What would actually happen to each case under each version: where a version has no
    // opinion, the city default's decision, marked so.
    let side = |s: &serde_json::Value, which: &str| {
        format!(
            "{}{}{} {}",
            s[which].as_str().unwrap_or(""),
            s[format!("{which}_deadlines")]
                .as_str()
                .map(|d| format!(" (deadlines: {d})"))
                .unwrap_or_default(),
            if s[format!("{which}_by_city_default")] == true {
                " [no opinion: the city default decides]"
            } else {
                ""
            },
            s[format!("{which}_reasons")]
        )
    };
    for s in samples.iter().take(20) {
        println!(
            "  e.g. {} ({}): {} → {}",
            s["case"].as_str().unwrap_or(""),
            s["kind"].as_str().unwrap_or(""),
            side(s, "active"),
            side(s, "candidate")
        );
    }
    for f in &failures {
        println!(
            "  failed: {} ({}): {}",
            f["case"].as_str().unwrap_or(""),
            f["version"].as_str().unwrap_or(""),
            f["failure"].as_str().unwrap_or("")
        );
    }
    println!("max fuel: active {fuel_a}, candidate {fuel_c}");
    Ok(())
}

fn message(body: &serde_json::Value) -> String {
    body["error"]["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| body.to_string())
}

/// Characters left as they are in a path segment or query value (RFC 3986's unreserved).
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}

/// How long the CLI waits for the server's answer (a large upload compiles for a while
/// before the server answers 202).
const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(120);

/// One request to an `http://` server (TLS belongs to a proxy in front), answered with the
/// status and the JSON body (null when the body is not JSON).
fn http(
    server: &str,
    method: &str,
    path: &str,
    token: &str,
    content_type: &str,
    body: &[u8],
) -> anyhow::Result<(u16, serde_json::Value)> {
    use http_body_util::BodyExt;
    use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
    let base = server.trim_end_matches('/');
    if !base.starts_with("http://") {
        bail!(
            "the server must be an http:// address (TLS belongs to a proxy in front), not `{server}`"
        );
    }
    let uri: hyper::Uri = format!("{base}{path}")
        .parse()
        .with_context(|| format!("`{base}{path}` is not a valid address"))?;
    let request = hyper::Request::builder()
        .method(method)
        .uri(uri)
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(CONTENT_TYPE, content_type)
        .body(http_body_util::Full::new(
            hyper::body::Bytes::copy_from_slice(body),
        ))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        let response = tokio::time::timeout(ANSWER_WITHIN, client.request(request))
            .await
            .with_context(|| format!("{base} did not answer within {} s", ANSWER_WITHIN.as_secs()))?
            .with_context(|| format!("could not reach {base}"))?;
        let status = response.status().as_u16();
        let bytes = tokio::time::timeout(ANSWER_WITHIN, response.into_body().collect())
            .await
            .with_context(|| format!("{base} did not finish its answer"))?
            .with_context(|| format!("reading the answer of {base}"))?
            .to_bytes();
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        ))
    })
}

#[cfg(test)]
mod tests {
    /// Names and ids go into paths and queries percent-encoded: reserved characters,
    /// spaces and non-ASCII are escaped, unreserved ones are not.
    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(super::encode("c-01_a.b~"), "c-01_a.b~");
        assert_eq!(super::encode("a b/c?d&e=f#"), "a%20b%2Fc%3Fd%26e%3Df%23");
        assert_eq!(super::encode("吉阳"), "%E5%90%89%E9%98%B3");
    }

    /// Only plain http:// servers are spoken to; anything else is refused before connecting.
    #[test]
    fn a_server_that_is_not_http_is_refused_with_a_reason() {
        let e = super::http(
            "https://x.example",
            "GET",
            "/",
            "t",
            "application/json",
            b"",
        )
        .unwrap_err();
        assert!(e.to_string().contains("must be an http:// address"), "{e}");
    }
}
