//! Server selection: smooth weighted round robin, least connections, source hashing and random with
//! two choices. The balancer sees servers only through [`Candidate`] and a list of eligible indices,
//! so it is tested without sockets.

use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::config::Balance;

/// What the balancer needs to know about a server.
pub trait Candidate {
    fn name(&self) -> &str;
    /// Current effective weight, > 0 for eligible servers.
    fn weight(&self) -> u32;
    /// Sessions currently open to the server.
    fn active(&self) -> u64;
}

/// Picks servers for one backend snapshot.
#[derive(Debug)]
pub struct Balancer {
    algorithm: Balance,
    /// Smooth round robin's current weights, by server index.
    current_weights: Mutex<Vec<i64>>,
    /// Where least_conn starts scanning, so equally loaded servers take turns.
    rotation: AtomicUsize,
    rng: AtomicU64,
}

impl Balancer {
    /// A balancer for `server_count` servers. `seed` only affects `random`.
    pub fn new(algorithm: Balance, server_count: usize, seed: u64) -> Self {
        Self {
            algorithm,
            current_weights: Mutex::new(vec![0; server_count]),
            rotation: AtomicUsize::new(0),
            // xorshift must not start at zero.
            rng: AtomicU64::new(seed | 1),
        }
    }

    pub fn algorithm(&self) -> Balance {
        self.algorithm
    }

    /// Picks one of `eligible` (indices into `servers`, each with weight > 0) for a client at `client`.
    pub fn pick<C: Candidate>(
        &self,
        servers: &[C],
        eligible: &[usize],
        client: IpAddr,
    ) -> Option<usize> {
        match eligible {
            [] => None,
            [only] => Some(*only),
            _ => match self.algorithm {
                Balance::RoundRobin => self.smooth_round_robin(servers, eligible),
                Balance::LeastConn => self.least_conn(servers, eligible),
                Balance::Source => source_hash(servers, eligible, client),
                Balance::Random => self.two_random_choices(servers, eligible),
            },
        }
    }

    /// nginx's smooth weighted round robin: every pick adds each weight to its server's current
    /// weight, takes the largest and subtracts the total from it. Weights 5,1,1 give a,a,b,a,c,a,a.
    fn smooth_round_robin<C: Candidate>(&self, servers: &[C], eligible: &[usize]) -> Option<usize> {
        let mut current = self
            .current_weights
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for &index in eligible {
            let weight = i64::from(servers.get(index)?.weight());
            let slot = current.get_mut(index)?;
            *slot += weight;
            let value = *slot;
            total += weight;
            if best.is_none_or(|best| current[best] < value) {
                best = Some(index);
            }
        }
        let best = best?;
        current[best] -= total;
        Some(best)
    }

    /// Fewest active sessions per unit of weight.
    fn least_conn<C: Candidate>(&self, servers: &[C], eligible: &[usize]) -> Option<usize> {
        let start = self.rotation.fetch_add(1, Ordering::Relaxed) % eligible.len();
        let mut best: Option<(usize, u64, u32)> = None;
        for offset in 0..eligible.len() {
            let index = eligible[(start + offset) % eligible.len()];
            let server = servers.get(index)?;
            let (active, weight) = (server.active(), server.weight().max(1));
            // active/weight < best_active/best_weight, without division.
            let better = best.is_none_or(|(_, best_active, best_weight)| {
                u128::from(active) * u128::from(best_weight)
                    < u128::from(best_active) * u128::from(weight)
            });
            if better {
                best = Some((index, active, weight));
            }
        }
        best.map(|(index, _, _)| index)
    }

    /// Power of two choices: two weighted random draws, the less loaded (per weight) wins.
    fn two_random_choices<C: Candidate>(&self, servers: &[C], eligible: &[usize]) -> Option<usize> {
        let first = self.weighted_random(servers, eligible)?;
        let second = self.weighted_random(servers, eligible)?;
        let load = |index: usize| {
            let server = &servers[index];
            (server.active(), server.weight().max(1))
        };
        let ((first_active, first_weight), (second_active, second_weight)) =
            (load(first), load(second));
        if u128::from(second_active) * u128::from(first_weight)
            < u128::from(first_active) * u128::from(second_weight)
        {
            Some(second)
        } else {
            Some(first)
        }
    }

    fn weighted_random<C: Candidate>(&self, servers: &[C], eligible: &[usize]) -> Option<usize> {
        let total: u64 = eligible
            .iter()
            .map(|&index| {
                servers
                    .get(index)
                    .map_or(0, |server| u64::from(server.weight()))
            })
            .sum();
        if total == 0 {
            return None;
        }
        let mut point = self.next_random() % total;
        for &index in eligible {
            let weight = u64::from(servers.get(index)?.weight());
            if point < weight {
                return Some(index);
            }
            point -= weight;
        }
        eligible.last().copied()
    }

    /// xorshift64*: plenty for spreading load; not for anything secret.
    fn next_random(&self) -> u64 {
        let step = |mut x: u64| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x
        };
        let previous = self
            .rng
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |x| Some(step(x)))
            .unwrap_or_else(|x| x);
        step(previous).wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Weighted rendezvous (highest random weight) hashing of the client IP over server names: the
/// score of a server depends only on its name, weight and the client, never on seeds, order or
/// process state, so two nodes with the same configuration agree; removing a server only moves the
/// clients that were on it.
fn source_hash<C: Candidate>(servers: &[C], eligible: &[usize], client: IpAddr) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for &index in eligible {
        let server = servers.get(index)?;
        let hash = stable_hash(server.name().as_bytes(), client);
        // A uniform value in (0, 1): 53 bits, never 0 so the logarithm is finite.
        #[allow(clippy::cast_precision_loss)] // 53-bit values are exact in f64
        let unit = ((hash >> 11) + 1) as f64 / ((1u64 << 53) + 1) as f64;
        let score = -f64::from(server.weight()) / unit.ln();
        if best.is_none_or(|(_, best_score)| score > best_score) {
            best = Some((index, score));
        }
    }
    best.map(|(index, _)| index)
}

/// FNV-1a over the server name and client address, finished with splitmix64's mixer so that close
/// inputs give far-apart outputs. Fixed constants: the same on every node and every build.
fn stable_hash(name: &[u8], client: IpAddr) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut feed = |bytes: &[u8]| {
        for &byte in bytes {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(name);
    feed(&[0xff]);
    match client {
        IpAddr::V4(ip) => feed(&ip.octets()),
        IpAddr::V6(ip) => feed(&ip.octets()),
    }
    let mut mixed = hash;
    mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    mixed ^ (mixed >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::net::Ipv4Addr;

    struct Fake {
        name: String,
        weight: u32,
        active: Cell<u64>,
    }

    impl Candidate for Fake {
        fn name(&self) -> &str {
            &self.name
        }
        fn weight(&self) -> u32 {
            self.weight
        }
        fn active(&self) -> u64 {
            self.active.get()
        }
    }

    fn servers(weights: &[u32]) -> Vec<Fake> {
        weights
            .iter()
            .enumerate()
            .map(|(index, &weight)| Fake {
                name: format!("s{index}"),
                weight,
                active: Cell::new(0),
            })
            .collect()
    }

    fn client(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from_bits(0xc633_6400u32.wrapping_add(n)))
    }

    /// Asserts each server's share is within 5% (relative) of its weight's share.
    fn assert_shares(counts: &[u64], weights: &[u32]) {
        let total: u64 = counts.iter().sum();
        let weight_total: u32 = weights.iter().sum();
        for (count, weight) in counts.iter().zip(weights) {
            #[allow(clippy::cast_precision_loss)]
            let (share, expected) = (
                *count as f64 / total as f64,
                f64::from(*weight) / f64::from(weight_total),
            );
            assert!(
                (share - expected).abs() <= expected * 0.05,
                "counts {counts:?} for weights {weights:?}"
            );
        }
    }

    const PICKS: u64 = 10_000;

    fn distribution(algorithm: Balance, weights: &[u32], hold_sessions: bool) -> Vec<u64> {
        let servers = servers(weights);
        let balancer = Balancer::new(algorithm, servers.len(), 42);
        let eligible: Vec<usize> = (0..servers.len()).collect();
        let mut counts = vec![0u64; servers.len()];
        for n in 0..PICKS {
            let n = u32::try_from(n).unwrap();
            let index = balancer.pick(&servers, &eligible, client(n)).unwrap();
            counts[index] += 1;
            if hold_sessions {
                servers[index].active.set(servers[index].active.get() + 1);
            }
        }
        counts
    }

    #[test]
    fn round_robin_respects_weights_exactly_and_interleaves() {
        let counts = distribution(Balance::RoundRobin, &[5, 3, 2], false);
        assert_eq!(counts, vec![5000, 3000, 2000]);
        let servers = servers(&[5, 1, 1]);
        let balancer = Balancer::new(Balance::RoundRobin, 3, 0);
        let order: Vec<usize> = (0..7)
            .map(|_| balancer.pick(&servers, &[0, 1, 2], client(0)).unwrap())
            .collect();
        assert_eq!(order, vec![0, 0, 1, 0, 2, 0, 0], "smooth: no burst of five");
    }

    #[test]
    fn least_conn_balances_held_sessions_by_weight() {
        let counts = distribution(Balance::LeastConn, &[1, 2, 3], true);
        assert_shares(&counts, &[1, 2, 3]);
        // Without held sessions every server ties and they take turns.
        assert_shares(
            &distribution(Balance::LeastConn, &[1, 1, 1, 1], false),
            &[1, 1, 1, 1],
        );
    }

    #[test]
    fn random_respects_weights() {
        assert_shares(
            &distribution(Balance::Random, &[1, 2, 3], false),
            &[1, 2, 3],
        );
        assert_shares(&distribution(Balance::Random, &[1, 2, 3], true), &[1, 2, 3]);
    }

    #[test]
    fn source_spreads_by_weight() {
        assert_shares(
            &distribution(Balance::Source, &[1, 1, 2], false),
            &[1, 1, 2],
        );
    }

    #[test]
    fn source_is_stable_and_identical_across_independent_balancers() {
        let first_servers = servers(&[1, 1, 1, 1]);
        let second_servers = servers(&[1, 1, 1, 1]);
        let first = Balancer::new(Balance::Source, 4, 1);
        let second = Balancer::new(Balance::Source, 4, 999);
        let all = [0, 1, 2, 3];
        for n in 0..2000 {
            let a = first.pick(&first_servers, &all, client(n));
            assert_eq!(a, first.pick(&first_servers, &all, client(n)), "stable");
            assert_eq!(
                a,
                second.pick(&second_servers, &all, client(n)),
                "same on both nodes"
            );
        }
        // Removing server 3 moves only the clients it had.
        for n in 0..2000 {
            let before = first.pick(&first_servers, &all, client(n)).unwrap();
            let after = first.pick(&first_servers, &[0, 1, 2], client(n)).unwrap();
            if before != 3 {
                assert_eq!(before, after);
            }
        }
    }

    #[test]
    fn source_hash_is_pinned() {
        // Pinned values: a change here changes client placement on upgraded nodes.
        assert_eq!(
            stable_hash(b"m1", "198.51.100.7".parse().unwrap()),
            0xba7b_7d45_9669_b3cc
        );
    }

    #[test]
    fn no_eligible_server_gives_none() {
        let servers = servers(&[1]);
        for algorithm in [
            Balance::RoundRobin,
            Balance::LeastConn,
            Balance::Source,
            Balance::Random,
        ] {
            assert_eq!(
                Balancer::new(algorithm, 1, 0).pick(&servers, &[], client(0)),
                None
            );
        }
    }
}
