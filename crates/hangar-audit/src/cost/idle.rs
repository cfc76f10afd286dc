//! Idle spend: accelerators the GPU nodes hold that no pod asks for, per node and per pool.

use std::collections::{BTreeMap, HashMap};

use super::report::{Amount, Basis, Idle, NodeIdle, PoolIdle, Usage};
use super::{Context, NodeInfo};

/// Every accelerator the GPU nodes hold, at their prices.
pub(super) fn offered(context: &Context<'_>, period_hours: f64) -> Amount {
    let mut amount = Amount::default();
    for node in context.gpu_nodes() {
        amount.add_gpus(node.devices.devices, node.quote.per_gpu_hour, period_hours);
    }
    amount
}

pub(super) fn idle(
    context: &Context<'_>,
    basis: Basis,
    usage: &[Usage],
    warnings: &mut Vec<String>,
) -> Idle {
    match basis {
        Basis::Observed => {
            let idle = observed(context, usage);
            for n in idle.nodes.iter().filter(|n| n.requested > n.gpus + 1e-9) {
                warnings.push(format!(
                    "node {}: its pods hold {} GPU(s) and it has {}; some of them cannot have started",
                    n.node,
                    super::trim_number(n.requested),
                    super::trim_number(n.gpus)
                ));
            }
            idle
        }
        Basis::Declared => {
            let idle = declared(context, usage);
            for p in idle.pools.iter().filter(|p| p.requested > p.gpus) {
                warnings.push(format!(
                    "pool {}: the manifests ask for {} GPU(s) that can only run there, and its nodes hold {}",
                    p.pool,
                    super::trim_number(p.requested),
                    super::trim_number(p.gpus)
                ));
            }
            idle
        }
    }
}

/// Per node: its devices minus what the pods on it hold.
fn observed(context: &Context<'_>, usage: &[Usage]) -> Idle {
    let period = context.period();
    let mut held: HashMap<&str, f64> = HashMap::new();
    for u in usage {
        if let Some(node) = &u.node {
            *held.entry(node.as_str()).or_default() += u.gpus;
        }
    }
    let mut nodes: Vec<NodeIdle> = context
        .gpu_nodes()
        .map(|n| {
            let requested = held.get(n.name.as_str()).copied().unwrap_or(0.0);
            let idle = (n.devices.devices - requested).max(0.0);
            let hourly = n.quote.per_gpu_hour.map(|p| p * idle);
            NodeIdle {
                node: n.name.clone(),
                pool: n.pool.clone(),
                gpu_model: n.gpu_model.clone(),
                instance_type: n.instance_type.clone(),
                gpus: n.devices.devices,
                requested,
                idle,
                price_per_gpu_hour: n.quote.per_gpu_hour,
                price_source: n.quote.source.clone(),
                hourly,
                projected: hourly.map(|h| h * period),
            }
        })
        .collect();
    nodes.sort_by(|a, b| b.idle.total_cmp(&a.idle).then(a.node.cmp(&b.node)));
    let mut pools: BTreeMap<&str, PoolIdle> = BTreeMap::new();
    for n in &nodes {
        let pool = pools
            .entry(n.pool.as_str())
            .or_insert_with(|| empty_pool(&n.pool));
        pool.nodes += 1;
        pool.gpu_model = same_model(pool.nodes, pool.gpu_model.take(), n.gpu_model.as_ref());
        pool.gpus += n.gpus;
        pool.requested += n.requested;
        pool.idle.add_gpus(n.idle, n.price_per_gpu_hour, period);
    }
    let pools = sorted(pools.into_values().collect());
    Idle {
        nodes,
        pools,
        unpinned_gpus: 0.0,
    }
}

/// Per pool: its devices minus what declared workloads that can only run there ask for. Demand
/// that may land in several pools is subtracted from none.
fn declared(context: &Context<'_>, usage: &[Usage]) -> Idle {
    let period = context.period();
    let mut pinned: HashMap<&str, f64> = HashMap::new();
    let mut unpinned = 0.0;
    for u in usage {
        match &u.pool {
            Some(pool) => *pinned.entry(pool.as_str()).or_default() += u.gpus,
            None => unpinned += u.gpus,
        }
    }
    let mut by_pool: BTreeMap<&str, Vec<&NodeInfo<'_>>> = BTreeMap::new();
    for n in context.gpu_nodes() {
        by_pool.entry(n.pool.as_str()).or_default().push(n);
    }
    let pools = by_pool
        .into_iter()
        .map(|(name, nodes)| {
            let mut pool = empty_pool(name);
            let mut priced_devices = 0.0;
            let mut priced_cost = 0.0;
            for n in &nodes {
                pool.nodes += 1;
                pool.gpu_model =
                    same_model(pool.nodes, pool.gpu_model.take(), n.gpu_model.as_ref());
                pool.gpus += n.devices.devices;
                if let Some(price) = n.quote.per_gpu_hour {
                    priced_devices += n.devices.devices;
                    priced_cost += n.devices.devices * price;
                }
            }
            pool.requested = pinned.get(name).copied().unwrap_or(0.0);
            let idle = (pool.gpus - pool.requested).max(0.0);
            if pool.gpus > 0.0 {
                // Idle GPUs are not any one node's: price them at the pool's average.
                let priced_share = priced_devices / pool.gpus;
                let average = (priced_devices > 0.0).then(|| priced_cost / priced_devices);
                pool.idle.add_gpus(idle * priced_share, average, period);
                pool.idle
                    .add_gpus(idle * (1.0 - priced_share), None, period);
            }
            pool
        })
        .collect();
    Idle {
        nodes: Vec::new(),
        pools: sorted(pools),
        unpinned_gpus: unpinned,
    }
}

fn empty_pool(name: &str) -> PoolIdle {
    PoolIdle {
        pool: name.to_owned(),
        nodes: 0,
        gpu_model: None,
        gpus: 0.0,
        requested: 0.0,
        idle: Amount::default(),
    }
}

/// The pool's GPU model while every node so far has the same one.
fn same_model(nodes: usize, pool: Option<String>, node: Option<&String>) -> Option<String> {
    match (nodes, pool, node) {
        (1, _, node) => node.cloned(),
        (_, Some(pool), Some(node)) if pool == *node => Some(pool),
        _ => None,
    }
}

fn sorted(mut pools: Vec<PoolIdle>) -> Vec<PoolIdle> {
    pools.sort_by(|a, b| {
        b.idle
            .hourly()
            .unwrap_or(0.0)
            .total_cmp(&a.idle.hourly().unwrap_or(0.0))
            .then(b.idle.gpus.total_cmp(&a.idle.gpus))
            .then(a.pool.cmp(&b.pool))
    });
    pools
}
