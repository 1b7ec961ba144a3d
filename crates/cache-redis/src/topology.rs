//! A Redis Cluster's nodes as `CLUSTER NODES` describes them: which are
//! primaries, where they listen, which slots they serve, and whether the
//! cluster counts them as failing.
//!
//! A pattern deletion reads it afresh each time, so it walks the primaries
//! of the topology of the moment (after a failover, the promoted replica;
//! after a reshard, the new owners). What it is not: a routing table; the
//! client keeps its own slot map for commands on keys.

/// One line of `CLUSTER NODES`, the fields the tier uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    pub(crate) id: String,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) primary: bool,
    /// The id of its primary, for a replica.
    pub(crate) replica_of: Option<String>,
    /// Flagged `fail` or `fail?` (or with no address): the others cannot
    /// reach it.
    pub(crate) failing: bool,
    /// The slot ranges it serves, both ends included.
    pub(crate) ranges: Vec<(u16, u16)>,
}

impl Node {
    /// How many slots it serves.
    pub(crate) fn slot_count(&self) -> usize {
        self.ranges.iter().map(|&(from, to)| usize::from(to.saturating_sub(from)) + 1).sum()
    }
}

/// The nodes of a `CLUSTER NODES` reply; lines it cannot read are skipped.
pub(crate) fn parse(reply: &str) -> Vec<Node> {
    reply.lines().filter_map(parse_line).collect()
}

/// The primaries that serve slots, by address.
pub(crate) fn primaries(reply: &str) -> Vec<Node> {
    let mut primaries: Vec<Node> =
        parse(reply).into_iter().filter(|node| node.primary && node.slot_count() > 0).collect();
    primaries.sort_by(|a, b| (&a.host, a.port).cmp(&(&b.host, b.port)));
    primaries
}

/// A line reads `<id> <ip:port@bus[,hostname]> <flags> <primary> <ping>
/// <pong> <epoch> <link> <slot>…`, every field separated by a space.
fn parse_line(line: &str) -> Option<Node> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (id, address, flags) = (fields.first()?, fields.get(1)?, fields.get(2)?);
    let endpoint = address.split([',', '@']).next()?;
    let (host, port) = endpoint.rsplit_once(':')?;
    let ranges = fields
        .iter()
        .skip(8)
        // `[slot->-node]` and `[slot-<-node]` mark a slot being migrated or
        // imported: its owner is still the one that lists it as a range.
        .filter(|field| !field.starts_with('['))
        .filter_map(|field| match field.split_once('-') {
            Some((from, to)) => Some((from.parse().ok()?, to.parse().ok()?)),
            None => field.parse().ok().map(|slot| (slot, slot)),
        })
        .collect();
    Some(Node {
        id: (*id).to_owned(),
        host: host.to_owned(),
        port: port.parse().ok()?,
        primary: flags.split(',').any(|flag| flag == "master"),
        replica_of: fields.get(3).filter(|&&of| of != "-").map(|&of| of.to_owned()),
        failing: flags.split(',').any(|flag| matches!(flag, "fail" | "fail?" | "noaddr" | "handshake")),
        ranges,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read() {
        let reply = "\
07c37dfeb2352 127.0.0.1:30004@40004 myself,master - 0 1426238317239 4 connected 0-5460 5461 [5462->-e7d1eecce]
e7d1 127.0.0.1:30005@40005 slave,fail 07c3 0 0 4 connected
67ed 10.0.0.7:30002@40002,redis-b.internal master,fail? - 0 0 2 connected 10923-16383
";
        let nodes = parse(reply);
        assert_eq!(nodes.len(), 3);
        assert_eq!(
            (nodes[0].id.as_str(), nodes[0].host.as_str(), nodes[0].port),
            ("07c37dfeb2352", "127.0.0.1", 30004)
        );
        assert!(nodes[0].primary && !nodes[0].failing);
        assert_eq!(nodes[0].ranges, [(0, 5460), (5461, 5461)]);
        assert_eq!(nodes[0].slot_count(), 5462);
        assert!(!nodes[1].primary && nodes[1].failing && nodes[1].ranges.is_empty());
        assert_eq!((nodes[0].replica_of.as_deref(), nodes[1].replica_of.as_deref()), (None, Some("07c3")));
        assert_eq!((nodes[2].host.as_str(), nodes[2].port, nodes[2].failing), ("10.0.0.7", 30002, true));
        let primaries = primaries(reply);
        assert_eq!(
            primaries.iter().map(|node| node.port).collect::<Vec<_>>(),
            [30002, 30004],
            "by address, failing ones included"
        );
    }
}
