//! The listing half of the `aws` source: walk the OU tree once, reconcile with `ListAccounts`,
//! read tags. Every list call is paginated; every request runs under the sweep's deadline. A
//! failed page is recorded (the listing is then incomplete) and the walk goes on with the rest;
//! refused credentials and configuration errors stop it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;

use aws_sdk_organizations::operation::list_accounts::ListAccountsOutput;
use aws_sdk_organizations::operation::list_accounts_for_parent::ListAccountsForParentOutput;
use aws_sdk_organizations::operation::list_organizational_units_for_parent::ListOrganizationalUnitsForParentOutput;
use aws_sdk_organizations::operation::list_roots::ListRootsOutput;
use aws_sdk_organizations::operation::list_tags_for_resource::ListTagsForResourceOutput;
use aws_sdk_organizations::operation::RequestId;
use aws_sdk_organizations::types::Account;
use futures::{stream, StreamExt};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::client::{classify, within, Clients};
use super::AwsConfig;
use crate::source::{SourceError, SourceErrorKind};

/// Largest page the Organizations list operations allow.
const PAGE: i32 = 20;
/// Deepest climb through `ListParents` (OUs nest at most five deep under a root).
const MAX_DEPTH: usize = 16;

/// One account found, with its path.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub account: Account,
    /// Root id, then OU ids down to the account's parent.
    pub path: Vec<String>,
    /// The names of the same nodes.
    pub path_names: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// Request ids of the pages that reported the account and its tags.
    pub request_ids: Vec<String>,
}

/// What a sweep read.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    pub accounts: BTreeMap<String, Found>,
    pub pages: u32,
    /// Request ids of the sweep-wide calls (`ListRoots`).
    pub request_ids: Vec<String>,
    /// Requests that failed after retries; non-empty means incomplete.
    pub errors: Vec<String>,
    /// Whether tags were read (`false` when turned off or refused).
    pub tags_read: bool,
}

/// A list operation's page.
trait Page: RequestId {
    fn token(&self) -> Option<&str>;
}

macro_rules! pages_of {
    ($($t:ty),*) => {$(
        impl Page for $t {
            fn token(&self) -> Option<&str> {
                self.next_token()
            }
        }
    )*};
}
pages_of!(
    ListRootsOutput,
    ListOrganizationalUnitsForParentOutput,
    ListAccountsForParentOutput,
    ListAccountsOutput,
    ListTagsForResourceOutput
);

/// Reads every page of one listing: `fetch(token)` asks for one page, `on_page` takes it.
/// Returns the pages read and the error that stopped it, if any.
async fn paginate<T, F, Fut>(
    deadline: Instant,
    op: &str,
    mut fetch: F,
    mut on_page: impl FnMut(T),
) -> (u32, Option<SourceError>)
where
    T: Page,
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<T, SourceError>>,
{
    let mut token: Option<String> = None;
    let mut seen = HashSet::new();
    let mut pages = 0;
    loop {
        match within(deadline, op, fetch(token.take())).await {
            Ok(page) => {
                pages += 1;
                let next = page.token().filter(|t| !t.is_empty()).map(str::to_owned);
                on_page(page);
                match next {
                    None => return (pages, None),
                    Some(t) if !seen.insert(t.clone()) => {
                        return (
                            pages,
                            Some(SourceError::BadResponse(format!(
                                "aws {op}: the same page token came back twice"
                            ))),
                        )
                    }
                    Some(t) => token = Some(t),
                }
            }
            Err(e) => return (pages, Some(e)),
        }
    }
}

fn fatal(e: &SourceError) -> bool {
    matches!(e.kind(), SourceErrorKind::Auth | SourceErrorKind::Config)
}

/// What one parent (root or OU) holds.
struct Children {
    parent: String,
    ous: Vec<(String, String)>,
    accounts: Vec<(Account, Option<String>)>,
    pages: u32,
    errors: Vec<SourceError>,
}

async fn list_parent(clients: &Clients, parent: String, deadline: Instant) -> Children {
    let mut ous = Vec::new();
    let mut accounts = Vec::new();
    let (org, pid) = (&clients.org, parent.as_str());
    let ou_call = paginate(
        deadline,
        "organizations:ListOrganizationalUnitsForParent",
        move |t| async move {
            org.list_organizational_units_for_parent()
                .parent_id(pid)
                .max_results(PAGE)
                .set_next_token(t)
                .send()
                .await
                .map_err(|e| classify("organizations:ListOrganizationalUnitsForParent", e))
        },
        |page: ListOrganizationalUnitsForParentOutput| {
            for ou in page.organizational_units() {
                if let Some(id) = ou.id() {
                    ous.push((id.to_owned(), ou.name().unwrap_or(id).to_owned()));
                }
            }
        },
    );
    let account_call = paginate(
        deadline,
        "organizations:ListAccountsForParent",
        move |t| async move {
            org.list_accounts_for_parent()
                .parent_id(pid)
                .max_results(PAGE)
                .set_next_token(t)
                .send()
                .await
                .map_err(|e| classify("organizations:ListAccountsForParent", e))
        },
        |page: ListAccountsForParentOutput| {
            let rid = page.request_id().map(str::to_owned);
            for a in page.accounts() {
                accounts.push((a.clone(), rid.clone()));
            }
        },
    );
    let ((p1, e1), (p2, e2)) = tokio::join!(ou_call, account_call);
    Children {
        parent,
        ous,
        accounts,
        pages: p1 + p2,
        errors: e1.into_iter().chain(e2).collect(),
    }
}

/// A node of the tree: root or OU.
struct Node {
    name: String,
    parent: Option<String>,
}

/// Root id … parent id, and their names, for an account whose parent is `parent`.
fn path_of(nodes: &HashMap<String, Node>, parent: &str) -> (Vec<String>, Vec<String>) {
    let mut ids = Vec::new();
    let mut names = Vec::new();
    let mut at = Some(parent.to_owned());
    while let Some(id) = at.take() {
        if ids.len() >= MAX_DEPTH || ids.contains(&id) {
            break;
        }
        let node = nodes.get(&id);
        names.push(node.map_or_else(|| id.clone(), |n| n.name.clone()));
        at = node.and_then(|n| n.parent.clone());
        ids.push(id);
    }
    ids.reverse();
    names.reverse();
    (ids, names)
}

/// Walks the tree, reconciles with `ListAccounts`, reads tags.
pub(crate) async fn list(
    clients: &Clients,
    config: &AwsConfig,
    deadline: Instant,
) -> Result<Listing, SourceError> {
    let mut listing = Listing::default();
    let mut nodes: HashMap<String, Node> = HashMap::new();
    let mut level = Vec::new();
    let (pages, err) = paginate(
        deadline,
        "organizations:ListRoots",
        |t| async move {
            clients
                .org
                .list_roots()
                .set_next_token(t)
                .send()
                .await
                .map_err(|e| classify("organizations:ListRoots", e))
        },
        |page: ListRootsOutput| {
            listing
                .request_ids
                .extend(page.request_id().map(str::to_owned));
            for r in page.roots() {
                if let Some(id) = r.id() {
                    let name = r.name().unwrap_or(id).to_owned();
                    nodes.insert(id.to_owned(), Node { name, parent: None });
                    level.push(id.to_owned());
                }
            }
        },
    )
    .await;
    listing.pages += pages;
    if let Some(e) = err {
        // Without the roots nothing can be listed.
        return Err(e);
    }

    // The walk: one level of parents at a time, `concurrency` parents at once.
    let mut walked: HashMap<String, (String, Option<String>)> = HashMap::new();
    let mut records: HashMap<String, Account> = HashMap::new();
    while !level.is_empty() {
        let results: Vec<Children> = stream::iter(std::mem::take(&mut level))
            .map(|parent| list_parent(clients, parent, deadline))
            .buffer_unordered(config.concurrency)
            .collect()
            .await;
        for r in results {
            listing.pages += r.pages;
            for e in r.errors {
                if fatal(&e) {
                    return Err(e);
                }
                listing.errors.push(e.to_string());
            }
            for (id, name) in r.ous {
                nodes.insert(
                    id.clone(),
                    Node {
                        name,
                        parent: Some(r.parent.clone()),
                    },
                );
                level.push(id);
            }
            for (a, rid) in r.accounts {
                if let Some(id) = a.id() {
                    walked.insert(id.to_owned(), (r.parent.clone(), rid));
                    records.insert(id.to_owned(), a);
                }
            }
        }
    }

    // ListAccounts: the authoritative member list.
    let mut members: Vec<(Account, Option<String>)> = Vec::new();
    let (pages, err) = paginate(
        deadline,
        "organizations:ListAccounts",
        |t| async move {
            clients
                .org
                .list_accounts()
                .max_results(PAGE)
                .set_next_token(t)
                .send()
                .await
                .map_err(|e| classify("organizations:ListAccounts", e))
        },
        |page: ListAccountsOutput| {
            let rid = page.request_id().map(str::to_owned);
            for a in page.accounts() {
                members.push((a.clone(), rid.clone()));
            }
        },
    )
    .await;
    listing.pages += pages;
    let mut placed: Vec<(Account, String, Vec<String>)> = Vec::new();
    match err {
        Some(e) if fatal(&e) => return Err(e),
        Some(e) => {
            // Cannot reconcile: report what the walk saw (the listing is incomplete anyway).
            listing.errors.push(e.to_string());
            for (id, (parent, rid)) in walked {
                if let Some(a) = records.remove(&id) {
                    placed.push((a, parent, rid.into_iter().collect()));
                }
            }
        }
        None => {
            let listed: HashSet<String> = members
                .iter()
                .filter_map(|(a, _)| a.id().map(str::to_owned))
                .collect();
            for gone in walked.keys().filter(|id| !listed.contains(*id)) {
                debug!(account = %gone, "account left the organisation during the sweep");
            }
            for (a, rid) in members {
                let Some(id) = a.id().map(str::to_owned) else {
                    continue;
                };
                let mut rids: Vec<String> = rid.into_iter().collect();
                if let Some((parent, wrid)) = walked.get(&id) {
                    rids.extend(wrid.iter().cloned());
                    placed.push((a, parent.clone(), rids));
                    continue;
                }
                // Moved or created while the tree was walked: ask for its parent.
                match parent_chain(clients, &id, &mut nodes, deadline, &mut listing.pages).await {
                    Ok(Some(parent)) => placed.push((a, parent, rids)),
                    Ok(None) => {
                        debug!(account = %id, "account left the organisation during the sweep")
                    }
                    Err(e) if fatal(&e) => return Err(e),
                    Err(e) => listing.errors.push(e.to_string()),
                }
            }
        }
    }
    for (account, parent, request_ids) in placed {
        let Some(id) = account.id().map(str::to_owned) else {
            continue;
        };
        let (path, path_names) = path_of(&nodes, &parent);
        listing.accounts.insert(
            id,
            Found {
                account,
                path,
                path_names,
                labels: BTreeMap::new(),
                request_ids,
            },
        );
    }
    if config.tags {
        read_tags(clients, config, deadline, &mut listing).await?;
    }
    Ok(listing)
}

/// The parent of a child (account or OU) not met in the walk, climbing `ListParents` until a
/// known node or a root. `Ok(None)`: the account no longer exists.
async fn parent_chain(
    clients: &Clients,
    child: &str,
    nodes: &mut HashMap<String, Node>,
    deadline: Instant,
    pages: &mut u32,
) -> Result<Option<String>, SourceError> {
    let mut first = None;
    let mut at = child.to_owned();
    for _ in 0..MAX_DEPTH {
        let out = within(deadline, "ListParents", async {
            clients
                .org
                .list_parents()
                .child_id(&at)
                .send()
                .await
                .map_err(|e| {
                    if e.as_service_error()
                        .is_some_and(|s| s.is_child_not_found_exception())
                    {
                        SourceError::BadResponse(String::new())
                    } else {
                        classify("organizations:ListParents", e)
                    }
                })
        })
        .await;
        *pages += 1;
        let out = match out {
            Ok(o) => o,
            Err(SourceError::BadResponse(m)) if m.is_empty() => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(parent) = out.parents().first() else {
            return Ok(first);
        };
        let Some(pid) = parent.id().map(str::to_owned) else {
            return Ok(first);
        };
        first.get_or_insert_with(|| pid.clone());
        if nodes.contains_key(&pid) {
            return Ok(first);
        }
        let is_root = parent.r#type().is_some_and(|t| t.as_str() == "ROOT");
        if at != child {
            // An OU created during the walk: its name is not known, its id stands for it.
            nodes.insert(
                at.clone(),
                Node {
                    name: at.clone(),
                    parent: Some(pid.clone()),
                },
            );
        }
        if is_root {
            nodes.insert(
                pid.clone(),
                Node {
                    name: pid.clone(),
                    parent: None,
                },
            );
            return Ok(first);
        }
        at = pid;
    }
    Ok(first)
}

/// Tags of one account: all pages.
async fn tags_of(
    clients: &Clients,
    id: String,
    deadline: Instant,
) -> (
    String,
    BTreeMap<String, String>,
    Vec<String>,
    u32,
    Option<SourceError>,
) {
    let mut tags = BTreeMap::new();
    let mut rids = Vec::new();
    let (org, rid) = (&clients.org, id.as_str());
    let (pages, err) = paginate(
        deadline,
        "organizations:ListTagsForResource",
        move |t| async move {
            org.list_tags_for_resource()
                .resource_id(rid)
                .set_next_token(t)
                .send()
                .await
                .map_err(|e| classify("organizations:ListTagsForResource", e))
        },
        |page: ListTagsForResourceOutput| {
            rids.extend(page.request_id().map(str::to_owned));
            for t in page.tags() {
                tags.insert(t.key().to_owned(), t.value().to_owned());
            }
        },
    )
    .await;
    (id, tags, rids, pages, err)
}

/// Reads every account's tags. `AccessDenied` on the first skips tags for the whole sweep; an
/// account whose tags cannot be read otherwise is left out (unknown labels must not look like
/// removed ones) and the listing is incomplete.
async fn read_tags(
    clients: &Clients,
    config: &AwsConfig,
    deadline: Instant,
    listing: &mut Listing,
) -> Result<(), SourceError> {
    let mut ids: Vec<String> = listing.accounts.keys().cloned().collect();
    listing.tags_read = true;
    let Some(first) = ids.pop() else {
        return Ok(());
    };
    let probe = tags_of(clients, first, deadline).await;
    if let Some(SourceError::Auth(why)) = &probe.4 {
        warn!(error = %why, "not allowed to read account tags; this sweep reports no labels");
        listing.tags_read = false;
        listing.pages += probe.3;
        return Ok(());
    }
    let rest: Vec<_> = stream::iter(ids)
        .map(|id| tags_of(clients, id, deadline))
        .buffer_unordered(config.concurrency)
        .collect()
        .await;
    for (id, tags, rids, pages, err) in std::iter::once(probe).chain(rest) {
        listing.pages += pages;
        match err {
            None => {
                if let Some(found) = listing.accounts.get_mut(&id) {
                    found.labels = tags;
                    found.request_ids.extend(rids);
                }
            }
            Some(e) => {
                if matches!(e.kind(), SourceErrorKind::Config) {
                    return Err(e);
                }
                listing.accounts.remove(&id);
                listing.errors.push(format!("account {id}: {e}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_run_from_the_root_to_the_parent() {
        let mut nodes = HashMap::new();
        nodes.insert(
            "r-1".to_owned(),
            Node {
                name: "Root".into(),
                parent: None,
            },
        );
        nodes.insert(
            "ou-a".to_owned(),
            Node {
                name: "A".into(),
                parent: Some("r-1".into()),
            },
        );
        nodes.insert(
            "ou-b".to_owned(),
            Node {
                name: "B".into(),
                parent: Some("ou-a".into()),
            },
        );
        assert_eq!(
            path_of(&nodes, "ou-b"),
            (
                vec!["r-1".to_owned(), "ou-a".into(), "ou-b".into()],
                vec!["Root".to_owned(), "A".into(), "B".into()]
            )
        );
        assert_eq!(path_of(&nodes, "r-1").0, vec!["r-1".to_owned()]);
        // An unknown parent is its own one-element path, named by its id.
        assert_eq!(path_of(&nodes, "ou-x").1, vec!["ou-x".to_owned()]);
    }
}
