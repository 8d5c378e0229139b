//! LL-HLS blocking requests (RFC 8216bis §6.2.5.2): `…m3u8?_HLS_msn=M[&_HLS_part=P]` is held until
//! segment M (or part P of it) is in the playlist on disk, and the preload-hinted part URL until
//! that part is written. A waiting request is a task parked on the stream's [`Published`] watch
//! (no thread each); it is released by the HLS sink's next publication, the stream's end (the
//! final playlist), or its deadline. The decisions ([`parse_directives`], [`playlist_wait`],
//! [`part_wait`]) are plain functions; [`wait`] is the only async part.

use std::time::Duration;

use talkstream_media::PlaylistEdge;
use tokio::sync::watch;

use crate::registry::Published;

/// What a blocking playlist request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Directives {
    /// `_HLS_msn`.
    pub msn: u64,
    /// `_HLS_part`, if given.
    pub part: Option<u64>,
}

/// A malformed delivery directive (answered with 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad delivery directive: {0}")]
pub struct BadDirective(pub &'static str);

/// Reads `_HLS_msn` and `_HLS_part` from a query string; `_HLS_skip` and anything else are
/// ignored (no `CAN-SKIP-UNTIL` is advertised). `Ok(None)`: not a blocking request.
pub fn parse_directives(query: Option<&str>) -> Result<Option<Directives>, BadDirective> {
    let (mut msn, mut part) = (None, None);
    for pair in query.unwrap_or("").split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match key {
            "_HLS_msn" => &mut msn,
            "_HLS_part" => &mut part,
            _ => continue,
        };
        let parsed = value
            .parse::<u64>()
            .map_err(|_| BadDirective("_HLS_msn and _HLS_part are decimal integers"))?;
        *slot = Some(parsed);
    }
    match (msn, part) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(BadDirective("_HLS_part without _HLS_msn")),
        (Some(msn), part) => Ok(Some(Directives { msn, part })),
    }
}

/// Where a request stands against what is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Answer now.
    Ready,
    /// Hold the request.
    NotYet,
    /// Never coming soon enough: answer at once (400 for a playlist, 404 for a part).
    Refuse,
}

/// A blocking playlist request against a playlist's edge (`None`: nothing published yet). Ready
/// once segment `msn` is complete, or, with `_HLS_part`, once that part of the open segment is
/// written; refused when `msn` is more than two segments past the last one.
pub fn playlist_wait(edge: Option<PlaylistEdge>, d: Directives) -> Wait {
    let edge = edge.unwrap_or_default();
    if edge.ended {
        return Wait::Ready;
    }
    let last = edge.last_msn.unwrap_or(0);
    let complete = edge.last_msn.is_some_and(|l| l >= d.msn);
    let part_there = d
        .part
        .is_some_and(|p| edge.open_msn > d.msn || (edge.open_msn == d.msn && edge.open_parts > p));
    if complete || part_there {
        Wait::Ready
    } else if d.msn > last.saturating_add(2) {
        Wait::Refuse
    } else {
        Wait::NotYet
    }
}

/// A request for part `index` of segment `msn` whose file is not there (yet): held only if it is
/// the next part (the one the playlist's preload hint names); ready once it is published.
pub fn part_wait(edge: PlaylistEdge, msn: u64, index: u64) -> Wait {
    let published = edge.last_msn.is_some_and(|l| l >= msn)
        || edge.open_msn > msn
        || (edge.open_msn == msn && edge.open_parts > index);
    if published || edge.ended {
        Wait::Ready
    } else if edge.open_msn == msn && edge.open_parts == index {
        Wait::NotYet
    } else {
        Wait::Refuse
    }
}

/// `part-<msn>-<index>.m4s` → (msn, index).
pub fn part_name(file: &str) -> Option<(u64, u64)> {
    let rest = file.strip_prefix("part-")?.strip_suffix(".m4s")?;
    let (msn, index) = rest.split_once('-')?;
    Some((msn.parse().ok()?, index.parse().ok()?))
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The condition holds, or the stream is gone (answer with what is on disk).
    Ready,
    /// Refused at once.
    Refused,
    /// The deadline passed (503 for a playlist).
    TimedOut,
}

/// Waits until `check` says ready or refuse, the stream's publisher goes away, or `timeout`.
pub async fn wait(
    mut rx: watch::Receiver<Published>,
    timeout: Duration,
    check: impl Fn(&Published) -> Wait,
) -> Outcome {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match check(&rx.borrow_and_update()) {
            Wait::Ready => return Outcome::Ready,
            Wait::Refuse => return Outcome::Refused,
            Wait::NotYet => {}
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Err(_) => return Outcome::TimedOut,
            Ok(Err(_)) => return Outcome::Ready, // the stream ended: its final files
            Ok(Ok(())) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(last: Option<u64>, open_parts: u64) -> PlaylistEdge {
        PlaylistEdge {
            last_msn: last,
            open_msn: last.map_or(1, |l| l + 1),
            open_parts,
            ended: false,
        }
    }

    fn d(msn: u64, part: Option<u64>) -> Directives {
        Directives { msn, part }
    }

    #[test]
    fn directives_parse() {
        assert_eq!(parse_directives(None), Ok(None));
        assert_eq!(parse_directives(Some("token=abc")), Ok(None));
        assert_eq!(
            parse_directives(Some("_HLS_msn=12&_HLS_part=3&_HLS_skip=YES")),
            Ok(Some(d(12, Some(3))))
        );
        assert_eq!(parse_directives(Some("_HLS_msn=4")), Ok(Some(d(4, None))));
        assert!(parse_directives(Some("_HLS_part=3")).is_err());
        assert!(parse_directives(Some("_HLS_msn=x")).is_err());
        assert!(parse_directives(Some("_HLS_msn=-1")).is_err());
    }

    #[test]
    fn playlist_requests_wait_for_their_part_or_segment() {
        // Segment 5 complete, 2 parts of segment 6 written.
        let e = Some(edge(Some(5), 2));
        assert_eq!(playlist_wait(e, d(5, None)), Wait::Ready);
        assert_eq!(playlist_wait(e, d(6, None)), Wait::NotYet);
        assert_eq!(playlist_wait(e, d(6, Some(1))), Wait::Ready);
        assert_eq!(playlist_wait(e, d(6, Some(2))), Wait::NotYet);
        assert_eq!(playlist_wait(e, d(7, Some(0))), Wait::NotYet);
        assert_eq!(playlist_wait(e, d(7, None)), Wait::NotYet);
        assert_eq!(playlist_wait(e, d(8, None)), Wait::Refuse, "> 2 ahead");
        assert_eq!(playlist_wait(None, d(1, Some(0))), Wait::NotYet);
        assert_eq!(playlist_wait(None, d(3, None)), Wait::Refuse);
        let ended = PlaylistEdge {
            ended: true,
            ..edge(Some(5), 0)
        };
        assert_eq!(playlist_wait(Some(ended), d(7, None)), Wait::Ready);
    }

    #[test]
    fn only_the_hinted_part_blocks() {
        let e = edge(Some(5), 2);
        assert_eq!(part_wait(e, 6, 1), Wait::Ready);
        assert_eq!(part_wait(e, 6, 2), Wait::NotYet, "the preload hint");
        assert_eq!(part_wait(e, 6, 3), Wait::Refuse);
        assert_eq!(part_wait(e, 7, 0), Wait::Refuse);
        assert_eq!(
            part_wait(e, 4, 9),
            Wait::Ready,
            "gone or never was: 404 from disk"
        );
        assert_eq!(part_name("part-12-3.m4s"), Some((12, 3)));
        assert_eq!(part_name("seg-12.m4s"), None);
        assert_eq!(part_name("part-x-3.m4s"), None);
    }

    #[tokio::test]
    async fn waiters_wake_on_publication_time_out_or_see_the_end() {
        let publisher = crate::registry::Publisher::default();
        let check = |p: &Published| playlist_wait(Some(p.video), d(2, Some(0)));
        let waiter = tokio::spawn(wait(publisher.subscribe(), Duration::from_secs(5), check));
        tokio::task::yield_now().await;
        publisher.edges_published(edge(Some(1), 0), None, false);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        publisher.edges_published(edge(Some(1), 1), None, false);
        assert_eq!(waiter.await.unwrap(), Outcome::Ready);

        let timed = wait(publisher.subscribe(), Duration::from_millis(20), |p| {
            playlist_wait(Some(p.video), d(3, None))
        });
        assert_eq!(timed.await, Outcome::TimedOut);

        let waiter = tokio::spawn(wait(publisher.subscribe(), Duration::from_secs(5), |p| {
            playlist_wait(Some(p.video), d(3, None))
        }));
        tokio::task::yield_now().await;
        drop(publisher);
        assert_eq!(waiter.await.unwrap(), Outcome::Ready, "released at the end");
    }
}
