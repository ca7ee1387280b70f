//! Figures of `make bench`: a value with its unit, the setup it was measured in, and its target.

use bulkhead_testbed::serde_json::{json, Value};

/// One figure with its target (`value <= max`), when it has one.
pub struct Figure {
    pub name: String,
    pub setup: String,
    pub value: f64,
    pub unit: &'static str,
    pub max: Option<f64>,
}

impl Figure {
    pub fn new(name: &str, setup: String, value: f64, unit: &'static str, max: Option<f64>) -> Figure {
        Figure { name: name.into(), setup, value, unit, max }
    }

    pub fn met(&self) -> Option<bool> {
        self.max.map(|max| self.value <= max)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "figure": self.name, "setup": self.setup, "value": self.value, "unit": self.unit,
            "target_max": self.max, "met": self.met(),
        })
    }
}

pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

pub fn print_table(figures: &[Figure]) {
    println!("{:<30} {:<58} {:>12} {:<12} {:>10} met", "figure", "setup", "value", "unit", "target");
    for f in figures {
        let target = f.max.map_or("-".to_string(), |m| format!("<= {m}"));
        let met = match f.met() {
            Some(true) => "met",
            Some(false) => "NOT MET",
            None => "-",
        };
        println!("{:<30} {:<58} {:>12.3} {:<12} {:>10} {met}", f.name, f.setup, f.value, f.unit, target);
    }
}
