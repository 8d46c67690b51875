//! The console's fragments: thin renderers over [`crate::service`], parameters parsed by the
//! API's own types ([`crate::params`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use inventory_schemas::{AssetKey, Point};
use maud::{html, Markup};
use serde_json::Value;

use super::integrity::{self, chain_check, ChainCheck};
use super::{chart, encode, Ctx, Query};
use crate::cursor;
use crate::model::{AssetDoc, ChangeDoc, ChangeType, DiffChange, StatusFilter};
use crate::params::{
    Flag, KeyCursor, LabelFilter, Limit, NameFilter, OptionalPoint, SeqCursor, Word,
};
use crate::patch::asset_patch;
use crate::problem::{ErrorCode, ServiceError};
use crate::service::assets::{self, AssetFilter};
use crate::service::history::{self, ChangeFilter};

/// Most rows an export writes.
pub const EXPORT_MAX_ROWS: usize = 100_000;
/// Most versions the asset page shows (the newest).
pub const TIMELINE_MAX: u32 = crate::params::MAX_LIMIT;
/// Most changes the chart counts.
pub const CHART_MAX_CHANGES: usize = 20_000;

fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// A hash as shown: its first 12 hex digits (the whole one in the title).
fn short(h: &str) -> &str {
    let h = h.strip_prefix("sha256:").unwrap_or(h);
    h.get(..12).unwrap_or(h)
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn asset_href(key: &str, as_of: Option<&str>) -> String {
    let mut pairs = vec![("key".to_owned(), key.to_owned())];
    if let Some(a) = as_of.filter(|a| !a.is_empty()) {
        pairs.push(("as_of".to_owned(), a.to_owned()));
    }
    format!("/ui/asset{}", encode(&pairs))
}

/// The root of every fragment: the checkpoint it was read at and the point it answers, which
/// the script puts on the *as of* slider.
fn frame(seq: u64, as_of_seq: Option<u64>, body: Markup) -> Markup {
    html! {
        div.fragment data-seq=(seq) data-as-of-seq=[as_of_seq] {
            (body)
        }
    }
}

/// The equivalent `curl` of an API call.
fn api_call(ctx: &Ctx, path: &str, pairs: &[(String, String)]) -> Markup {
    let url = format!("{}{path}{}", ctx.origin, encode(pairs));
    let auth = if ctx.state.tokens.reads_need_token() {
        "-H \"Authorization: Bearer $INVENTORY_TOKEN\" "
    } else {
        ""
    };
    html! {
        details.api-call {
            summary { "Show as API call" }
            pre { code { "curl -sS " (auth) "'" (url) "'" } }
        }
    }
}

/// The filter of the inventory's query.
struct InventoryQuery {
    filter: AssetFilter,
    text: Option<String>,
    limit: u32,
    cursor: Option<String>,
    as_of: Option<Point>,
}

impl InventoryQuery {
    fn parse(q: &Query) -> Result<Self, ServiceError> {
        let text: NameFilter = q.get("q")?;
        let labels: Vec<LabelFilter> = q.get_all("label")?;
        let org_path: NameFilter = q.get("org_path")?;
        let provider: Word = q.get("provider")?;
        let kind: Word = q.get("kind")?;
        let status: Option<StatusFilter> = q.get("status")?;
        let include_deleted: Flag = q.get("include_deleted")?;
        let limit: Limit = q.get("limit")?;
        let cursor: KeyCursor = q.get("cursor")?;
        let as_of: OptionalPoint = q.get("as_of")?;
        let text = text
            .0
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        Ok(Self {
            filter: AssetFilter {
                provider: provider.0,
                kind: kind.0,
                status,
                name: text.clone(),
                labels: labels.into_iter().filter_map(|l| l.0).collect(),
                org_path: org_path.0,
                include_deleted: include_deleted.0,
            },
            text,
            limit: limit.0,
            cursor: cursor.0,
            as_of: as_of.0,
        })
    }

    /// The same query as parameters of `GET /api/v1/assets`.
    fn api_pairs(&self, q: &Query) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        let mut put = |k: &str, v: Option<&str>| {
            if let Some(v) = v {
                pairs.push((k.to_owned(), v.to_owned()));
            }
        };
        put("provider", self.filter.provider.as_deref());
        put("kind", self.filter.kind.as_deref());
        put("status", self.filter.status.map(|s| s.as_str()));
        put("name", self.text.as_deref());
        for l in &self.filter.labels {
            put("label", Some(l));
        }
        put("org_path", self.filter.org_path.as_deref());
        put(
            "include_deleted",
            self.filter.include_deleted.then_some("true"),
        );
        put("limit", Some(&self.limit.to_string()));
        put("as_of", q.raw("as_of").filter(|v| !v.is_empty()));
        pairs
    }
}

/// `/`: the inventory, searched, faceted and paged, now or as of a point.
pub(crate) async fn inventory(ctx: Ctx) -> Result<Markup, ServiceError> {
    let q = &ctx.query;
    let iq = InventoryQuery::parse(q)?;
    let as_of_raw = q.raw("as_of");
    let page = assets::list(
        &ctx.state,
        iq.filter.clone(),
        iq.limit,
        iq.cursor.clone(),
        iq.as_of,
    )
    .await?;
    let facets = assets::facets(&ctx.state, iq.filter.clone(), iq.as_of).await?;
    // Search by id: a text that is an asset key names one asset.
    let exact = match iq.text.as_deref().map(AssetKey::parse) {
        Some(Ok(key)) => assets::get(&ctx.state, key, iq.as_of).await.ok(),
        _ => None,
    };
    let body = &page.body;
    let all = |m: &BTreeMap<String, u64>| -> Vec<(String, u64)> {
        m.iter().map(|(k, n)| (k.clone(), *n)).collect()
    };
    let facet = |name: &'static str, label: &str, counts: &[(String, u64)], more: u64| {
        // Labels add up (all of them must hold); the other facets replace their value.
        let multi = name == "label";
        let selected = |value: &str| {
            if multi {
                q.has(name, value)
            } else {
                q.raw(name) == Some(value)
            }
        };
        let href = |value: &str, add: bool| match (multi, add) {
            (true, _) => q.toggled(name, value, add),
            (false, true) => q.with(&[(name, Some(value))]),
            (false, false) => q.with(&[(name, None)]),
        };
        html! {
            section.facet aria-labelledby={"facet-" (name)} {
                h3 id={"facet-" (name)} { (label) }
                ul {
                    @for (value, n) in counts {
                        li {
                            @if selected(value) {
                                a href={"/" (href(value, false))} aria-current="true"
                                    title={"Remove the " (label) " filter"} {
                                    strong { (value) } " (" (n) ") ×"
                                }
                            } @else {
                                a href={"/" (href(value, true))} data-facet=(name) data-value=(value) {
                                    (value) " (" span.count { (n) } ")"
                                }
                            }
                        }
                    }
                    @if counts.is_empty() { li { "none" } }
                    @if more > 0 { li.more { (more) " more (the " (assets::FACET_TOP) " most frequent shown)" } }
                }
            }
        }
    };
    let export_query = q.with(&[]);
    let markup = html! {
        h1 { "Inventory" }
        form.search method="get" action="/" role="search" aria-label="Search the inventory" {
            @for (k, v) in q.pairs().iter().filter(|(k, _)| matches!(k.as_str(), "provider" | "kind" | "status" | "label" | "org_path" | "as_of" | "limit")) {
                input type="hidden" name=(k) value=(v);
            }
            label for="q" { "Name, id or key" }
            input #q type="search" name="q" value=[iq.text.as_deref()] maxlength="256"
                placeholder="e.g. payments, 123456789012 or aws/account/123456789012";
            label.check {
                input #include_deleted type="checkbox" name="include_deleted" value="true"
                    checked[iq.filter.include_deleted];
                " Include deleted"
            }
            button type="submit" { "Search" }
        }
        @if let Some(hit) = &exact {
            p.exact { "Exact key match: " a href=(asset_href(&hit.body.key, as_of_raw)) { (hit.body.name) " (" (hit.body.key) ")" } }
        }
        div.inventory {
            aside.facets aria-label="Facets" {
                p.total { strong #total { (facets.total) } " assets match" }
                (facet("provider", "Provider", &all(&facets.provider), 0))
                (facet("kind", "Kind", &all(&facets.kind), 0))
                (facet("status", "Status", &all(&facets.status), 0))
                @match (&facets.org_path, &facets.labels) {
                    (Some(org), Some(labels)) => {
                        (facet("org_path", "Org path", &org.values, org.more))
                        (facet("label", "Labels", &labels.values, labels.more))
                    }
                    _ => { p.note #tags-note { "Org path and label facets: current view only." } }
                }
            }
            section.results aria-label="Assets" {
                div.actions {
                    a href={"/ui/export.csv" (export_query)} data-download="inventory.csv" { "Export CSV" }
                    a href={"/ui/export.json" (export_query)} data-download="inventory.json" { "Export JSON" }
                    (api_call(&ctx, "/api/v1/assets", &iq.api_pairs(q)))
                }
                div.scroll {
                    table #assets {
                        caption.visually-hidden { "Assets, ordered by key" }
                        thead { tr {
                            th scope="col" { "Name" } th scope="col" { "Key" }
                            th scope="col" { "Status" } th scope="col" { "Org path" }
                            th scope="col" { "Labels" } th scope="col" { "Last changed" }
                        } }
                        tbody {
                            @for item in &body.items {
                                tr.deleted[item.deleted_at.is_some()] data-key=(item.key) {
                                    td { a href=(asset_href(&item.key, as_of_raw)) { (item.name) } }
                                    td { code { (item.key) } }
                                    td { (item.status) @if item.deleted_at.is_some() { " " span.badge.removed { "deleted" } } }
                                    td { (item.org_path.join(" / ")) }
                                    td { @for (k, v) in item.labels.iter().take(6) { span.label { (k) "=" (v) } " " } }
                                    td { time datetime=(item.last_changed.to_rfc3339()) { (time(&item.last_changed)) } }
                                }
                            }
                        }
                    }
                }
                @if body.items.is_empty() { p { "No asset matches." } }
                nav.paging aria-label="Pages" {
                    @if iq.cursor.is_some() { a href={"/" (q.with(&[]))} { "← First page" } }
                    @if let Some(next) = &body.next_cursor {
                        a id="next-page" rel="next" href={"/" (q.with(&[("cursor", Some(next))]))} { "Next page →" }
                    }
                }
            }
        }
    };
    Ok(frame(page.seq, body.as_of_seq, markup))
}

/// Every asset of the inventory's current query (pages of the service's largest size).
async fn all_assets(ctx: &Ctx) -> Result<Vec<AssetDoc>, ServiceError> {
    let iq = InventoryQuery::parse(&ctx.query)?;
    let mut as_of = iq.as_of;
    let mut after = None;
    let mut items = Vec::new();
    loop {
        let page = assets::list(
            &ctx.state,
            iq.filter.clone(),
            crate::params::MAX_LIMIT,
            after,
            as_of,
        )
        .await?;
        // Every later page is read at the point the first one resolved to.
        if let Some(seq) = page.body.as_of_seq {
            as_of = Some(Point::Seq(seq));
        }
        items.extend(page.body.items);
        match page.body.next_cursor {
            Some(c) if items.len() < EXPORT_MAX_ROWS => {
                after = Some(cursor::decode(&c).map_err(|why| {
                    ServiceError::new(ErrorCode::Internal, format!("paging the export: {why}"))
                })?);
            }
            _ => break,
        }
    }
    items.truncate(EXPORT_MAX_ROWS);
    Ok(items)
}

/// A CSV cell: quoted when needed, and never read as a formula by a spreadsheet.
fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// `/ui/export.csv`: the current query's assets as CSV.
pub(crate) async fn export_csv(ctx: Ctx) -> Result<(&'static str, Vec<u8>), ServiceError> {
    let items = all_assets(&ctx).await?;
    let mut out = String::from(
        "key,provider,kind,id,name,status,org_path,labels,url,first_seen,last_changed,last_seen,deleted_at,version\n",
    );
    for a in items {
        let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let row = [
            a.key,
            a.provider,
            a.kind,
            a.id,
            a.name,
            a.status,
            a.org_path.join("/"),
            labels.join(";"),
            a.url.unwrap_or_default(),
            a.first_seen.to_rfc3339(),
            a.last_changed.to_rfc3339(),
            a.last_seen.to_rfc3339(),
            a.deleted_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
            a.version.to_string(),
        ];
        let cells: Vec<String> = row.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    Ok(("text/csv; charset=utf-8", out.into_bytes()))
}

/// `/ui/export.json`: the current query's assets as a JSON array of the API's documents.
pub(crate) async fn export_json(ctx: Ctx) -> Result<(&'static str, Vec<u8>), ServiceError> {
    let items = all_assets(&ctx).await?;
    let body =
        serde_json::to_vec(&items).map_err(|e| ServiceError::internal("writing the export", &e))?;
    Ok(("application/json; charset=utf-8", body))
}

/// `/ui/asset`: one asset (as of a point), its versions, and the diff of two of them.
pub(crate) async fn asset(ctx: Ctx) -> Result<Markup, ServiceError> {
    let q = &ctx.query;
    let raw_key = q.raw("key").unwrap_or("");
    let key = AssetKey::parse(raw_key).map_err(|_| {
        ServiceError::invalid_parameter(
            "key",
            "key must be <provider>/<kind>/<native id>, e.g. aws/account/123456789012",
        )
    })?;
    let as_of: OptionalPoint = q.get("as_of")?;
    let a: SeqCursor = q.get("a")?;
    let b: SeqCursor = q.get("b")?;
    let as_of_raw = q.raw("as_of").filter(|v| !v.is_empty());
    let doc = assets::get(&ctx.state, key.clone(), as_of.0).await?;
    let hist = history::history(&ctx.state, key, TIMELINE_MAX, None).await?;
    let d = &doc.body;
    // The timeline as of the point: the versions up to the one shown.
    let versions: Vec<&ChangeDoc> = hist
        .body
        .items
        .iter()
        .filter(|v| as_of.0.is_none() || v.seq <= d.version)
        .collect();
    let data = d.data.value();
    let compare = match (a.0, b.0) {
        (Some(x), Some(y)) if x != y => {
            let find = |s: u64| hist.body.items.iter().find(|v| v.seq == s);
            match (find(x.min(y)), find(x.max(y))) {
                (Some(old), Some(new)) => Some((old, new)),
                _ => {
                    return Err(ServiceError::invalid_parameter(
                        "a",
                        "a and b must be sequences of two versions of this asset",
                    ))
                }
            }
        }
        _ => None,
    };
    let chain = chain_check(&versions);
    let signed = ctx.state.integrity.borrow().clone();
    let markup = html! {
        nav.breadcrumb aria-label="Breadcrumb" {
            ol {
                li { a href={"/" (q.as_of_only())} { "Inventory" } }
                li { a href={"/" (encode(&provider_pairs(&d.provider, as_of_raw)))} { (d.provider) } }
                @for p in &d.org_path { li { (p) } }
                li aria-current="page" { (d.name) }
            }
        }
        h1 { (d.name) " " span.badge { (d.status) } @if d.deleted_at.is_some() { " " span.badge.removed { "deleted" } } }
        dl.facts {
            dt { "Key" } dd { code #asset-key { (d.key) } }
            dt { "Kind" } dd { (d.kind) }
            dt { "Version" } dd { "seq " (d.version) }
            dt { "First seen" } dd { (time(&d.first_seen)) }
            dt { "Last changed" } dd { (time(&d.last_changed)) }
            dt { "Last seen" } dd { (time(&d.last_seen)) }
            @if let Some(t) = &d.deleted_at { dt { "Deleted" } dd { (time(t)) } }
            @if let Some(u) = &d.url { dt { "URL" } dd { (u) } }
            dt { "Source" } dd { code { (d.source) } }
        }
        @if let Some((old, new)) = compare {
            (version_diff(old, new))
        }
        section aria-labelledby="labels-h" {
            h2 #labels-h { "Labels" }
            @if d.labels.is_empty() { p { "No labels." } }
            @else {
                table.labels { tbody { @for (k, v) in &d.labels { tr { th scope="row" { (k) } td { (v) } } } } }
            }
        }
        section aria-labelledby="integrity-h" {
            h2 #integrity-h { "Integrity" }
            p id="chain-status" class=(if matches!(chain, ChainCheck::Verified(_)) { "ok" } else { "bad" }) {
                @match &chain {
                    ChainCheck::Verified(n) => { "Per-asset chain: verified over " (n) " versions (each names the one before it and its chain hash recomputes). " }
                    ChainCheck::Broken { seq, reason } => { "Per-asset chain: broken at seq " (seq) " (" (reason) "). " }
                }
                "Newest chain hash " code title=(d.chainhash) { (short(&d.chainhash)) } ". "
            }
            (integrity::checkpoint_status(&signed, &versions.iter().map(|v| v.seq).collect::<Vec<_>>()))
        }
        details.doc open {
            summary { "Document" }
            pre { code { (pretty(&data)) } }
        }
        details.doc {
            summary { "Provenance" }
            pre { code { (pretty(data.get("provenance").unwrap_or(&Value::Null))) } }
        }
        section aria-labelledby="timeline-h" {
            h2 #timeline-h { "Timeline" }
            @if hist.body.next_cursor.is_some() {
                p { "The newest " (TIMELINE_MAX) " versions; older ones: " code { "GET /api/v1/assets/{key}/history" } "." }
            }
            form #timeline-form method="get" action="/ui/asset" {
                input type="hidden" name="key" value=(d.key);
                @if let Some(v) = as_of_raw { input type="hidden" name="as_of" value=(v); }
                div.scroll {
                    table #timeline {
                        caption.visually-hidden { "Versions, newest first; pick two to compare" }
                        thead { tr {
                            th scope="col" { "From" } th scope="col" { "To" }
                            th scope="col" { "Seq" } th scope="col" { "Time" } th scope="col" { "Type" }
                            th scope="col" { "Collector" } th scope="col" { "Content hash" }
                            th scope="col" { "Chain hash" } th scope="col" { "Signed checkpoint" }
                            th scope="col" { "Open" }
                        } }
                        tbody {
                            @for v in &versions {
                                tr data-seq=(v.seq) {
                                    td { input type="radio" name="a" value=(v.seq) id={"a-" (v.seq)} checked[a.0 == Some(v.seq)]
                                            aria-label={"Compare from seq " (v.seq)}; }
                                    td { input type="radio" name="b" value=(v.seq) id={"b-" (v.seq)} checked[b.0 == Some(v.seq)]
                                            aria-label={"Compare to seq " (v.seq)}; }
                                    td { (v.seq) }
                                    td { time datetime=(v.recorded_at.to_rfc3339()) { (time(&v.recorded_at)) } }
                                    td { span.badge.(v.ty) { (v.ty) } }
                                    td { code { (v.source) } }
                                    td { code title=(v.contenthash) { (short(&v.contenthash)) } }
                                    td { code title=(v.chainhash) { (short(&v.chainhash)) } }
                                    td { (integrity::version_cell(&signed, v.seq)) }
                                    td.links {
                                        a href=(asset_href(&d.key, Some(&format!("seq:{}", v.seq)))) { "this version" }
                                        " · "
                                        a href={"/?as_of=seq:" (v.seq)} { "estate at this event" }
                                    }
                                }
                            }
                        }
                    }
                }
                button type="submit" { "Compare the two versions" }
            }
        }
    };
    Ok(frame(hist.seq, as_of.0.map(|_| d.version), markup))
}

fn provider_pairs(provider: &str, as_of: Option<&str>) -> Vec<(String, String)> {
    let mut pairs = vec![("provider".to_owned(), provider.to_owned())];
    if let Some(a) = as_of {
        pairs.push(("as_of".to_owned(), a.to_owned()));
    }
    pairs
}

/// Two versions side by side: each operation of the JSON Patch from the older to the newer,
/// with the value before and after.
fn version_diff(old: &ChangeDoc, new: &ChangeDoc) -> Markup {
    let ops = asset_patch(&old.data, &new.data);
    html! {
        section #version-diff aria-labelledby="diff-h" {
            h2 #diff-h { "Changes from seq " (old.seq) " to seq " (new.seq) }
            @if ops.is_empty() { p { "The two versions have the same content." } }
            @else {
                div.scroll {
                    table.diff {
                        thead { tr {
                            th scope="col" { "Field" }
                            th scope="col" { "seq " (old.seq) " (" (time(&old.recorded_at)) ")" }
                            th scope="col" { "seq " (new.seq) " (" (time(&new.recorded_at)) ")" }
                        } }
                        tbody {
                            @for op in &ops {
                                @let path = op.get("path").and_then(Value::as_str).unwrap_or("");
                                @let kind = op.get("op").and_then(Value::as_str).unwrap_or("");
                                tr.(kind) data-path=(path) {
                                    th scope="row" { code { (path) } " " span.op { (kind) } }
                                    td.before { @if let Some(v) = old.data.pointer(path) { pre { (pretty(v)) } } @else { "—" } }
                                    td.after { @if let Some(v) = op.get("value") { pre { (pretty(v)) } } @else { "—" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `/ui/diff`: the estate between two points, grouped by provider and org path.
pub(crate) async fn diff(ctx: Ctx) -> Result<Markup, ServiceError> {
    let q = &ctx.query;
    let from: OptionalPoint = q.get("from")?;
    let to: OptionalPoint = q.get("to")?;
    let as_of: OptionalPoint = q.get("as_of")?;
    let provider: Word = q.get("provider")?;
    let kind: Word = q.get("kind")?;
    let limit: Limit = q.get("limit")?;
    let cursor: KeyCursor = q.get("cursor")?;
    let now = ctx.state.pool.snapshot().seq();
    let form = html! {
        h1 { "Estate diff" }
        form.diff-form method="get" action="/ui/diff" aria-label="Compare two points" {
            @if let Some(v) = q.raw("as_of") { input type="hidden" name="as_of" value=(v); }
            label for="from" { "From" }
            input #from name="from" value=[q.raw("from")] required placeholder="2026-01-01T00:00:00Z or seq:N";
            label for="to" { "To" }
            input #to name="to" value=[q.raw("to")] placeholder="as of (default) or now";
            label for="diff-provider" { "Provider" }
            input #diff-provider name="provider" value=[provider.0.as_deref()] size="10";
            label for="diff-kind" { "Kind" }
            input #diff-kind name="kind" value=[kind.0.as_deref()] size="10";
            button type="submit" { "Compare" }
        }
    };
    let Some(from) = from.0 else {
        return Ok(frame(
            now,
            None,
            html! { (form) p { "Pick the point to compare from; the other end is the global as of (or now)." } },
        ));
    };
    let to = to.0.or(as_of.0).unwrap_or(Point::Seq(now));
    let page = history::diff(
        &ctx.state,
        from,
        to,
        provider.0.clone(),
        kind.0.clone(),
        limit.0,
        cursor.0.clone(),
    )
    .await?;
    let mut groups: BTreeMap<(String, String), Vec<&crate::model::DiffItem>> = BTreeMap::new();
    for item in &page.items {
        let doc = item.to.as_ref().or(item.from.as_ref());
        let (pr, org) = doc.map_or_else(
            || (String::new(), String::new()),
            |d| (d.provider.clone(), d.org_path.join(" / ")),
        );
        groups.entry((pr, org)).or_default().push(item);
    }
    let mut api_pairs = vec![
        (
            "from".to_owned(),
            q.raw("from").unwrap_or_default().to_owned(),
        ),
        ("to".to_owned(), format!("seq:{}", page.to_seq)),
    ];
    if let Some(p) = &provider.0 {
        api_pairs.push(("provider".to_owned(), p.clone()));
    }
    if let Some(k) = &kind.0 {
        api_pairs.push(("kind".to_owned(), k.clone()));
    }
    let to_point = format!("seq:{}", page.to_seq);
    let c = &page.counts;
    let markup = html! {
        (form)
        p { "From seq " (page.from_seq) " to seq " (page.to_seq) "." }
        dl.totals #diff-totals {
            div { dt { "Added" } dd #diff-added { (c.added) } }
            div { dt { "Removed" } dd #diff-removed { (c.removed) } }
            div { dt { "Changed" } dd #diff-changed { (c.changed) } }
            div { dt { "Total" } dd { (c.added + c.removed + c.changed) } }
        }
        (api_call(&ctx, "/api/v1/diff", &api_pairs))
        @for ((pr, org), items) in &groups {
            section.group {
                h2 { (pr) @if !org.is_empty() { " · " (org) } " " span.count { "(" (items.len()) ")" } }
                ul.changes {
                    @for item in items {
                        @let (label, class) = match item.change {
                            DiffChange::Added => ("added", "added"),
                            DiffChange::Removed => ("removed", "removed"),
                            DiffChange::Changed => ("changed", "changed"),
                        };
                        @let name = item.to.as_ref().or(item.from.as_ref()).map_or("", |d| d.name.as_str());
                        li data-key=(item.key) data-change=(label) {
                            span.badge.(class) { (label) } " "
                            a href=(asset_href(&item.key, Some(&to_point))) { (name) } " "
                            code { (item.key) }
                            @if let Some(patch) = &item.patch {
                                details {
                                    summary { (patch.len()) " operation" @if patch.len() != 1 { "s" } }
                                    ul.patch {
                                        @for op in patch {
                                            li {
                                                code { (op.get("op").and_then(Value::as_str).unwrap_or("")) " "
                                                       (op.get("path").and_then(Value::as_str).unwrap_or("")) }
                                                @if let Some(v) = op.get("value") { " → " code { (v.to_string()) } }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if page.items.is_empty() { p { "Nothing changed between the two points." } }
        @if let Some(next) = &page.next_cursor {
            nav.paging aria-label="Pages" {
                a rel="next" href={"/ui/diff" (q.with(&[("cursor", Some(next))]))} { "Next page →" }
            }
        }
    };
    Ok(frame(now, Some(page.to_seq), markup))
}

/// `/ui/changes`: a chart of changes over time per provider and type, and the newest ones.
pub(crate) async fn changes(ctx: Ctx) -> Result<Markup, ServiceError> {
    let q = &ctx.query;
    let as_of: OptionalPoint = q.get("as_of")?;
    let since: OptionalPoint = q.get("since")?;
    let provider: Word = q.get("provider")?;
    let kind: Word = q.get("kind")?;
    let ty: Option<ChangeType> = q.get("type")?;
    // Default window: the 30 days before the point shown.
    let since = since.0.or_else(|| match as_of.0 {
        Some(Point::Time(t)) => Some(Point::Time(t - chrono::Duration::days(30))),
        Some(Point::Seq(_)) => None,
        None => Some(Point::Time(Utc::now() - chrono::Duration::days(30))),
    });
    let filter = ChangeFilter {
        provider: provider.0.clone(),
        kind: kind.0.clone(),
        ty,
    };
    let mut all: Vec<ChangeDoc> = Vec::new();
    let mut after = None;
    let mut capped = false;
    let seq = loop {
        let page = history::changes(
            &ctx.state,
            filter.clone(),
            since,
            as_of.0,
            crate::params::MAX_LIMIT,
            after,
        )
        .await?;
        all.extend(page.body.items);
        match page.body.next_cursor.and_then(|c| c.parse::<u64>().ok()) {
            Some(c) if all.len() < CHART_MAX_CHANGES => after = Some(c),
            Some(_) => {
                capped = true;
                break page.seq;
            }
            None => break page.seq,
        }
    };
    let points: Vec<chart::Point> = all
        .iter()
        .map(|c| chart::Point {
            at: c.recorded_at,
            provider: c.key.split('/').next().unwrap_or("").to_owned(),
            ty: c.ty.clone(),
        })
        .collect();
    let as_of_seq = all.last().map(|c| c.seq).filter(|_| as_of.0.is_some());
    let markup = html! {
        h1 { "Changes" }
        form.diff-form method="get" action="/ui/changes" aria-label="Filter changes" {
            @if let Some(v) = q.raw("as_of") { input type="hidden" name="as_of" value=(v); }
            label for="since" { "Since" }
            input #since name="since" value=[q.raw("since")] placeholder="30 days before";
            label for="ch-provider" { "Provider" }
            input #ch-provider name="provider" value=[provider.0.as_deref()] size="10";
            label for="ch-kind" { "Kind" }
            input #ch-kind name="kind" value=[kind.0.as_deref()] size="10";
            label for="ch-type" { "Type" }
            select #ch-type name="type" {
                option value="" { "any" }
                @for t in ChangeType::VALUES {
                    option value=(t) selected[ty.map(|x| x.as_str()) == Some(*t)] { (t) }
                }
            }
            button type="submit" { "Show" }
        }
        p {
            (all.len()) " changes"
            @if capped { " (the first " (CHART_MAX_CHANGES) " of the window)" }
            " up to " @if as_of.0.is_some() { "the as-of point" } @else { "now" } "."
        }
        (chart::render(&points))
        h2 { "Newest changes" }
        div.scroll {
            table #changes {
                thead { tr { th scope="col" { "Seq" } th scope="col" { "Time" } th scope="col" { "Type" } th scope="col" { "Asset" } } }
                tbody {
                    @for c in all.iter().rev().take(50) {
                        tr {
                            td { (c.seq) }
                            td { (time(&c.recorded_at)) }
                            td { span.badge.(c.ty) { (c.ty) } }
                            td { a href=(asset_href(&c.key, Some(&format!("seq:{}", c.seq)))) { (c.name) } " " code { (c.key) } }
                        }
                    }
                }
            }
        }
    };
    Ok(frame(seq, as_of_seq, markup))
}

/// `/ui/collectors`: freshness per scope, stale ones first and marked.
pub(crate) async fn collectors(ctx: Ctx) -> Result<Markup, ServiceError> {
    let list = crate::service::collectors::list(&ctx.state).await?;
    let seq = ctx.state.pool.snapshot().seq();
    let mut items = list.items;
    items.sort_by(|a, b| b.stale.cmp(&a.stale).then(a.source.cmp(&b.source)));
    let stale = items.iter().filter(|c| c.stale).count();
    let signed = ctx.state.integrity.borrow().clone();
    let markup = html! {
        h1 { "Collectors" }
        (integrity::summary(&signed))
        p {
            (items.len()) " scopes; expected sweep interval " (list.expected_interval_seconds) " s; "
            strong { (stale) " stale" } " (no ok sweep within twice the interval). Freshness is always as of now."
        }
        div.scroll {
            table #collectors {
                thead { tr {
                    th scope="col" { "Scope" } th scope="col" { "Collector" } th scope="col" { "Provider" }
                    th scope="col" { "Last sweep" } th scope="col" { "Age" } th scope="col" { "Last ok" }
                    th scope="col" { "Runs" } th scope="col" { "Error" }
                } }
                tbody {
                    @for c in &items {
                        tr.stale[c.stale] data-source=(c.source) {
                            th scope="row" { (c.scope) @if c.stale { " " span.badge.removed { "stale" } } br; code { (c.source) } }
                            td { (c.collector) }
                            td { (c.provider) }
                            td { span.badge.(c.last_status) { (c.last_status) } " " (time(&c.last_finished_at)) }
                            td { (age(c.age_seconds)) }
                            td { @match &c.last_ok_at { Some(t) => (time(t)), None => "never" } }
                            td { (c.runs) }
                            td { @if let Some(e) = &c.error { (e) } }
                        }
                    }
                }
            }
        }
        @if items.is_empty() { p { "No sweep has been recorded yet." } }
    };
    Ok(frame(seq, None, markup))
}

fn age(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

/// The live view's controls: filters (kept in the URL), pause/resume, the list the script
/// fills from the change feed.
pub(crate) fn live_shell(q: &Query) -> Markup {
    html! {
        h1 { "Live changes" }
        form.diff-form #live-filter method="get" action="/ui/live" aria-label="Filter the feed" {
            label for="live-provider" { "Provider" }
            input #live-provider name="provider" value=[q.raw("provider")] size="10";
            label for="live-kind" { "Kind" }
            input #live-kind name="kind" value=[q.raw("kind")] size="10";
            label for="live-type" { "Type" }
            select #live-type name="type" {
                option value="" { "any" }
                @for t in ChangeType::VALUES {
                    option value=(t) selected[q.raw("type") == Some(*t)] { (t) }
                }
            }
            button type="submit" { "Apply" }
        }
        div #live data-live="/api/v1/changes/stream" {
            p {
                button #live-toggle type="button" aria-pressed="false" { "Pause" }
                " "
                span #live-status role="status" { "Connecting…" }
            }
            div.scroll {
                table {
                    caption.visually-hidden { "Changes as they arrive, newest first" }
                    thead { tr { th scope="col" { "Seq" } th scope="col" { "Time" } th scope="col" { "Type" } th scope="col" { "Asset" } } }
                    tbody #live-rows {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
