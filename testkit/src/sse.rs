//! A minimal Server-Sent Events reader for tests and benchmarks of `/api/v1/changes/stream`:
//! complete events are taken off the front of a byte buffer as they arrive.

/// One SSE event: its type, id and data.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

/// Appends a received chunk to `buf` (carriage returns dropped) and returns the complete events
/// now at its front, removing them; comments (`:` lines) are ignored.
pub fn feed(buf: &mut Vec<u8>, chunk: &[u8]) -> Vec<SseEvent> {
    buf.extend(chunk.iter().filter(|&&b| b != b'\r'));
    parse_events(buf)
}

/// Parses the complete events at the front of `buf` (removing them), ignoring comments.
pub fn parse_events(buf: &mut Vec<u8>) -> Vec<SseEvent> {
    let mut out = Vec::new();
    while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
        let raw: Vec<u8> = buf.drain(..end + 2).collect();
        let block = String::from_utf8_lossy(&raw);
        let mut ev = SseEvent::default();
        let mut any = false;
        for line in block.lines() {
            if line.is_empty() || line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            any = true;
            match field {
                "event" => ev.event = value.to_owned(),
                "id" => ev.id = Some(value.to_owned()),
                "data" => {
                    if !ev.data.is_empty() {
                        ev.data.push('\n');
                    }
                    ev.data.push_str(value);
                }
                _ => {}
            }
        }
        if any {
            out.push(ev);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_and_comments_are_skipped() {
        let mut buf = Vec::new();
        assert!(feed(
            &mut buf,
            b": keep-alive\r\n\r\nevent: change\r\nid: 7\r\nda"
        )
        .is_empty());
        let evs = feed(&mut buf, b"ta: {\"a\":1}\ndata: x\n\nevent: end\n");
        assert_eq!(
            evs,
            vec![SseEvent {
                event: "change".into(),
                id: Some("7".into()),
                data: "{\"a\":1}\nx".into(),
            }]
        );
        assert_eq!(buf, b"event: end\n");
    }
}
