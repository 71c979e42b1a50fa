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

    /// One figure that does not vary (a bound, a fixed target).
    pub fn point(value: f64) -> Self {
        Self {
            median: value,
            min: value,
            max: value,
        }
    }

    /// Every figure multiplied by `factor` (not negative).
    pub fn scaled(&self, factor: f64) -> Self {
        Self {
            median: self.median * factor,
            min: self.min * factor,
            max: self.max * factor,
        }
    }

    /// Whether these repetitions are at least `other`'s: met when even the
    /// smallest of them reaches the largest of `other`'s, missed when even
    /// the largest falls short of the smallest of `other`'s, and within
    /// noise when the two ranges overlap, so that a verdict is stated only
    /// where the medians separate beyond the run-to-run spread.
    pub fn at_least(&self, other: &Spread) -> Standing {
        if self.min >= other.max {
            Standing::Met
        } else if self.max < other.min {
            Standing::Missed
        } else {
            Standing::WithinNoise
        }
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

/// How repeated measurements stand against a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Met in every repetition's range.
    Met,
    /// Missed in every repetition's range.
    Missed,
    /// The ranges overlap: no verdict.
    WithinNoise,
}

impl Standing {
    /// The targets table's last column; `median_met` says which side of
    /// the target the medians fell on, shown where the ranges overlap.
    pub fn label(self, median_met: bool) -> String {
        match self {
            Standing::Met => "met".to_owned(),
            Standing::Missed => "**missed**".to_owned(),
            Standing::WithinNoise if median_met => "within noise (median met)".to_owned(),
            Standing::WithinNoise => "within noise (median missed)".to_owned(),
        }
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

    #[test]
    fn a_verdict_needs_ranges_that_do_not_overlap() {
        let ours = Spread::of(&[10.0, 11.0, 12.0]);
        assert_eq!(ours.at_least(&Spread::of(&[7.0, 8.0, 9.0])), Standing::Met);
        assert_eq!(ours.at_least(&Spread::of(&[13.0, 14.0])), Standing::Missed);
        // A higher median is not enough while one repetition overlaps.
        assert_eq!(
            ours.at_least(&Spread::of(&[8.0, 9.0, 10.5])),
            Standing::WithinNoise
        );
        assert_eq!(
            ours.at_least(&Spread::of(&[11.5, 13.0, 14.0])),
            Standing::WithinNoise
        );
        // Against a fixed bound, the whole range must clear it.
        assert_eq!(ours.at_least(&Spread::point(10.0)), Standing::Met);
        assert_eq!(ours.at_least(&Spread::point(11.0)), Standing::WithinNoise);
        assert_eq!(
            ours.scaled(0.5).at_least(&Spread::point(6.5)),
            Standing::Missed
        );
    }
}
