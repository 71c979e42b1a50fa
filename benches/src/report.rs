//! Medians with their min–max over repetitions, and markdown tables.

/// Median, min and max of repeated measurements.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spread {
    /// The median.
    pub median: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
}

impl Spread {
    /// Summarises `values` (empty gives zeros).
    pub fn of(values: &[f64]) -> Self {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        sorted.sort_by(f64::total_cmp);
        let Some((&min, &max)) = sorted.first().zip(sorted.last()) else {
            return Self::default();
        };
        let mid = sorted.len() / 2;
        let median = if sorted.len().is_multiple_of(2) {
            (sorted[mid - 1] + sorted[mid]) / 2.0
        } else {
            sorted[mid]
        };
        Self { median, min, max }
    }

    /// `median (min–max)` with `digits` decimals, scaled by `scale`.
    pub fn show(&self, scale: f64, digits: usize) -> String {
        format!(
            "{:.digits$} ({:.digits$}–{:.digits$})",
            self.median * scale,
            self.min * scale,
            self.max * scale
        )
    }
}

/// A calls-per-second figure in k or M.
pub fn rate(spread: &Spread) -> String {
    let (scale, unit) = if spread.median >= 1e6 {
        (1e-6, " M")
    } else if spread.median >= 1e3 {
        (1e-3, " k")
    } else {
        (1.0, "")
    };
    format!(
        "{}{unit}",
        spread.show(scale, if scale == 1.0 { 0 } else { 2 })
    )
}

/// A markdown table.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!(
        "| {} |\n|{}\n",
        header.join(" | "),
        "---|".repeat(header.len())
    );
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(
            Spread::of(&[3.0, 1.0, 2.0]),
            Spread {
                median: 2.0,
                min: 1.0,
                max: 3.0
            }
        );
        assert_eq!(Spread::of(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
        assert_eq!(Spread::of(&[]), Spread::default());
        assert_eq!(rate(&Spread::of(&[2_500_000.0])), "2.50 (2.50–2.50) M");
    }
}
