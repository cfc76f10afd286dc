//! Prices from the policy's `gpuPrices`: by GPU model, then by instance type divided by the
//! node's GPUs, then the default.

use hangar_core::policy::GpuPrices;
use serde::Serialize;

use super::devices::model_matches;

/// The hourly price of one physical accelerator, and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quote {
    /// Per device and hour; `None` when nothing in the price table applies.
    pub per_gpu_hour: Option<f64>,
    /// Which entry set the price, e.g. `models.H100 (nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3)`.
    pub source: String,
}

impl Quote {
    pub fn unpriced(why: impl Into<String>) -> Quote {
        Quote {
            per_gpu_hour: None,
            source: why.into(),
        }
    }
}

/// What is known about where a GPU runs, to price it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hardware<'a> {
    /// Label and value naming the GPU model, in order of preference.
    pub models: &'a [(&'a str, &'a str)],
    pub instance_type: Option<&'a str>,
    /// Physical accelerators on one such node, to divide an instance price by.
    pub devices_per_node: Option<f64>,
}

/// The price of one accelerator per hour on `hardware`.
pub fn quote(prices: &GpuPrices, hardware: Hardware<'_>) -> Quote {
    for (label, value) in hardware.models {
        if let Some((key, price)) = model_price(prices, value) {
            return Quote {
                per_gpu_hour: Some(price),
                source: format!("models.{key} ({label}={value})"),
            };
        }
    }
    if let Some(instance_type) = hardware.instance_type
        && let Some(price) = prices.instance_types.get(instance_type)
    {
        match hardware.devices_per_node.filter(|d| *d > 0.0) {
            Some(devices) => {
                return Quote {
                    per_gpu_hour: Some(price.get() / devices),
                    source: format!(
                        "instanceTypes.{instance_type} ({} per node ÷ {} GPUs)",
                        price.get(),
                        super::trim_number(devices)
                    ),
                };
            }
            None => {
                if let Some(default) = prices.default {
                    return Quote {
                        per_gpu_hour: Some(default.get()),
                        source: format!(
                            "default (instanceTypes.{instance_type} is per node, and how many GPUs such a node holds is unknown)"
                        ),
                    };
                }
            }
        }
    }
    match prices.default {
        Some(default) => Quote {
            per_gpu_hour: Some(default.get()),
            source: "default".into(),
        },
        None => Quote::unpriced(unpriced_reason(hardware)),
    }
}

/// The longest `models` key that names `value`, with its price.
fn model_price<'p>(prices: &'p GpuPrices, value: &str) -> Option<(&'p str, f64)> {
    prices
        .models
        .iter()
        .filter(|(key, _)| model_matches(key, value))
        .max_by_key(|(key, _)| key.len())
        .map(|(key, price)| (key.as_str(), price.get()))
}

fn unpriced_reason(hardware: Hardware<'_>) -> String {
    let mut what: Vec<String> = hardware
        .models
        .iter()
        .map(|(label, value)| format!("{label}={value}"))
        .collect();
    if let Some(t) = hardware.instance_type {
        what.push(format!("instance type {t}"));
    }
    if what.is_empty() {
        "no price: GPU model and instance type unknown, and gpuPrices.default is unset".into()
    } else {
        format!(
            "no price: nothing in gpuPrices for {}, and gpuPrices.default is unset",
            what.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hangar_core::policy::Price;

    fn prices(default: Option<f64>) -> GpuPrices {
        let mut p = GpuPrices::default();
        p.models.insert("A100".into(), Price::new(3.0).unwrap());
        p.models
            .insert("A100-SXM4-80GB".into(), Price::new(4.0).unwrap());
        p.models.insert("L4".into(), Price::new(0.8).unwrap());
        p.instance_types
            .insert("g6e.12xlarge".into(), Price::new(10.0).unwrap());
        p.default = default.map(|d| Price::new(d).unwrap());
        p
    }

    #[test]
    fn the_longest_matching_model_wins() {
        let q = quote(
            &prices(None),
            Hardware {
                models: &[("nvidia.com/gpu.product", "NVIDIA-A100-SXM4-80GB")],
                ..Hardware::default()
            },
        );
        assert_eq!(q.per_gpu_hour, Some(4.0));
        assert_eq!(
            q.source,
            "models.A100-SXM4-80GB (nvidia.com/gpu.product=NVIDIA-A100-SXM4-80GB)"
        );
        let gke = quote(
            &prices(None),
            Hardware {
                models: &[("cloud.google.com/gke-accelerator", "nvidia-tesla-a100")],
                ..Hardware::default()
            },
        );
        assert_eq!(gke.per_gpu_hour, Some(3.0));
    }

    #[test]
    fn an_instance_price_is_divided_by_the_gpus_of_the_node() {
        let q = quote(
            &prices(Some(1.0)),
            Hardware {
                models: &[("nvidia.com/gpu.product", "NVIDIA-L40S")],
                instance_type: Some("g6e.12xlarge"),
                devices_per_node: Some(4.0),
            },
        );
        assert_eq!(q.per_gpu_hour, Some(2.5));
        assert!(
            q.source.starts_with("instanceTypes.g6e.12xlarge"),
            "{}",
            q.source
        );
    }

    #[test]
    fn the_default_then_nothing() {
        let hardware = Hardware {
            models: &[("nvidia.com/gpu.product", "Tesla-T4")],
            instance_type: Some("g4dn.xlarge"),
            devices_per_node: Some(1.0),
        };
        assert_eq!(quote(&prices(Some(1.5)), hardware).per_gpu_hour, Some(1.5));
        let none = quote(&prices(None), hardware);
        assert_eq!(none.per_gpu_hour, None);
        assert!(none.source.contains("Tesla-T4"), "{}", none.source);
        assert!(none.source.contains("g4dn.xlarge"), "{}", none.source);
    }
}
