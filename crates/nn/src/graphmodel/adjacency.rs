//! DeepScaler's check: how well the STGNN's learned adjacency recovers the true call graph.
//!
//! Over every unordered pair of distinct services, the learned weight of the pair is `A[i][j] +
//! A[j][i]` (the adjacency `softmax(relu(E1 E2^T))`, rows summing to one); the true links are the
//! pairs joined by a call, or by a queue or topic that one produces to and the other consumes
//! from. Two scores: the ROC AUC of the weights as a classifier of true links (0.5 is chance,
//! 1 perfect), and the precision of the `k` heaviest pairs with `k` the number of true links.

use std::collections::BTreeSet;

use graphscale_core::{AppGraph, NodeKind, Relation};
use serde::Serialize;

use super::GraphModel;

/// How a learned adjacency agrees with the graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdjacencyAgreement {
    /// Services compared.
    pub services: usize,
    /// Unordered pairs of distinct services.
    pub pairs: usize,
    /// Pairs that are truly linked.
    pub links: usize,
    /// ROC AUC of the learned weights for the true links (ties count half).
    pub auc: f64,
    /// Share of true links among the `links` heaviest pairs.
    pub precision_at_links: f64,
}

/// The undirected service links of `g`: calls and producer-consumer pairs through a channel.
pub fn service_links(g: &AppGraph) -> BTreeSet<(usize, usize)> {
    let mut out = BTreeSet::new();
    let idx = |id: &str| g.index_of(id);
    let mut into: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    let mut from: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for e in &g.edges {
        let (Some(s), Some(d)) = (idx(&e.src), idx(&e.dst)) else {
            continue;
        };
        match e.relation {
            Relation::Calls if s != d => {
                out.insert((s.min(d), s.max(d)));
            }
            Relation::Produces | Relation::Publishes => into.entry(d).or_default().push(s),
            Relation::Consumes | Relation::Subscribes => from.entry(d).or_default().push(s),
            _ => {}
        }
    }
    for (ch, producers) in &into {
        for &p in producers {
            for &c in from.get(ch).into_iter().flatten() {
                if p != c {
                    out.insert((p.min(c), p.max(c)));
                }
            }
        }
    }
    out
}

/// The agreement of a learned adjacency `adj` (`n x n`, row-major, over `g`'s nodes) with `g`.
/// `None` when `adj` is not `n x n` or there is no pair to compare or no true link.
pub fn agreement(g: &AppGraph, adj: &[f32]) -> Option<AdjacencyAgreement> {
    let n = g.nodes.len();
    if adj.len() != n * n {
        return None;
    }
    let svc: Vec<usize> = (0..n)
        .filter(|&i| g.nodes[i].kind == NodeKind::Service)
        .collect();
    let links = service_links(g);
    let mut scored: Vec<(f64, bool)> = Vec::new();
    for (a, &i) in svc.iter().enumerate() {
        for &j in &svc[a + 1..] {
            let w = f64::from(adj[i * n + j]) + f64::from(adj[j * n + i]);
            scored.push((if w.is_finite() { w } else { 0.0 }, links.contains(&(i, j))));
        }
    }
    let pos = scored.iter().filter(|s| s.1).count();
    let neg = scored.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    // AUC: the probability that a true link outweighs a non-link (ties half).
    let mut wins = 0.0;
    for p in scored.iter().filter(|s| s.1) {
        for q in scored.iter().filter(|s| !s.1) {
            wins += if p.0 > q.0 {
                1.0
            } else if p.0 == q.0 {
                0.5
            } else {
                0.0
            };
        }
    }
    let mut sorted = scored.clone();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    let hits = sorted.iter().take(pos).filter(|s| s.1).count();
    Some(AdjacencyAgreement {
        services: svc.len(),
        pairs: scored.len(),
        links: pos,
        auc: wins / (pos * neg) as f64,
        precision_at_links: hits as f64 / pos as f64,
    })
}

fn adjacency_of(net: &super::GraphNet) -> Option<Vec<f32>> {
    net.stgnn
        .as_ref()?
        .adaptive_adjacency()
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .ok()
}

impl GraphModel {
    /// The STGNN's learned adjacency over the layout's nodes (`n x n`, row-major); `None` for
    /// the other models.
    pub fn learned_adjacency(&self) -> Option<Vec<f32>> {
        adjacency_of(&self.net)
    }

    /// [`agreement`] of the STGNN's learned adjacency with the graph it was trained on.
    pub fn adjacency_agreement(&self) -> Option<AdjacencyAgreement> {
        agreement(&self.graph, &self.learned_adjacency()?)
    }

    /// The same for the network's initial weights (the same seed, before any training): the
    /// control that shows what training changed.
    pub fn initial_adjacency_agreement(&self) -> Option<AdjacencyAgreement> {
        let net = super::GraphNet::new(
            self.kind,
            &self.config,
            &self.layout,
            &burn::tensor::Device::flex(),
        );
        agreement(&self.graph, &adjacency_of(&net)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use graphscale_core::{Edge, Node};

    fn chain() -> AppGraph {
        AppGraph::new(
            "c",
            vec![
                Node::new("a", NodeKind::Service),
                Node::new("b", NodeKind::Service),
                Node::new("c", NodeKind::Service),
                Node::new("q", NodeKind::Queue),
                Node::new("d", NodeKind::Service),
            ],
            vec![
                Edge::new("a", "b", Relation::Calls, 1.0),
                Edge::new("b", "q", Relation::Produces, 1.0),
                Edge::new("d", "q", Relation::Consumes, 1.0),
            ],
        )
        .unwrap()
    }

    #[test]
    fn links_join_calls_and_channels() {
        let g = chain();
        let l: Vec<_> = service_links(&g).into_iter().collect();
        assert_eq!(l, vec![(0, 1), (1, 4)]);
    }

    #[test]
    fn a_perfect_adjacency_scores_one_and_an_inverted_one_zero() {
        let g = chain();
        let n = 5;
        let mut good = vec![0f32; n * n];
        for (i, j) in [(0, 1), (1, 4)] {
            good[i * n + j] = 0.5;
        }
        let a = agreement(&g, &good).unwrap();
        assert_eq!((a.services, a.pairs, a.links), (4, 6, 2));
        assert_eq!((a.auc, a.precision_at_links), (1.0, 1.0));
        let bad: Vec<f32> = good.iter().map(|w| 0.5 - w).collect();
        let b = agreement(&g, &bad).unwrap();
        assert_eq!((b.auc, b.precision_at_links), (0.0, 0.0));
        // Uniform weights: every pair ties, AUC one half.
        assert_eq!(agreement(&g, &vec![0.2; n * n]).unwrap().auc, 0.5);
        assert!(agreement(&g, &[0.0; 3]).is_none());
    }
}
