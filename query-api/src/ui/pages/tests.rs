use super::*;

#[test]
fn csv_cells_are_quoted_and_never_formulas() {
    assert_eq!(csv_cell("plain"), "plain");
    assert_eq!(csv_cell("a,b"), "\"a,b\"");
    assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
    assert_eq!(csv_cell("=1+1"), "'=1+1");
}

#[test]
fn chain_check_verifies_and_finds_the_break() {
    use inventory_schemas::{hash::chain_hash, EventType};
    let v = |seq, prevseq, ty: EventType, content: &str, chain: String| ChangeDoc {
        seq,
        prevseq,
        ty: ty.short().into(),
        key: "aws/account/1".into(),
        time: DateTime::<Utc>::MIN_UTC,
        recorded_at: DateTime::<Utc>::MIN_UTC,
        name: String::new(),
        status: String::new(),
        source: String::new(),
        event_id: String::new(),
        contenthash: content.into(),
        chainhash: chain,
        patch: None,
        provenance: None,
        data: Value::Null,
    };
    let (d, c) = (EventType::Discovered, EventType::Changed);
    let h1 = chain_hash("", "c1", d);
    let h4 = chain_hash(&h1, "c2", c);
    let h9 = chain_hash(&h4, "c3", c);
    let good = [
        v(9, 4, c, "c3", h9.clone()),
        v(4, 1, c, "c2", h4.clone()),
        v(1, 0, d, "c1", h1.clone()),
    ];
    let check = |v: &[ChangeDoc]| chain_check(&v.iter().collect::<Vec<_>>());
    assert_eq!(check(&good), ChainCheck::Verified(3));
    // A bounded timeline: the oldest shown version's link is taken as given.
    assert_eq!(check(&good[..2]), ChainCheck::Verified(2));
    // A tampered content hash (the chain hash left as it was) breaks the chain there.
    let mut tampered = good.clone();
    tampered[1].contenthash = "forged".into();
    assert!(matches!(
        check(&tampered),
        ChainCheck::Broken { seq: 4, .. }
    ));
    // A forged chain hash breaks it too.
    let mut forged = good.clone();
    forged[0].chainhash = chain_hash("", "c3", c);
    assert!(matches!(check(&forged), ChainCheck::Broken { seq: 9, .. }));
    // A prevseq that skips a version.
    let mut skipped = good.clone();
    skipped[0].prevseq = 3;
    assert!(matches!(check(&skipped), ChainCheck::Broken { seq: 9, .. }));
}
