//! Readers for public just-in-time defect datasets, in the three layouts Omen's evaluator reads.
//!
//! All three carry Kamei et al.'s metrics under different names and scalings; each reader turns a
//! row into raw [`FeatureVector`] values with ISSTA'21 semantics (absolute counts, entropy in
//! bits). The ISSTA'21 `__` column is a copy of the label and is never read.

use crate::features::{Feature, FeatureVector, LabelledChange};

/// A dataset's column layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// ZZR0/ISSTA21-JIT-DP `<project>_k_feature.csv`.
    Issta21,
    /// Kamei et al. 2013: normalised `la`/`ld`/`lt`/`entropy`, `npt`, `commitdate` as text.
    Kamei,
    /// ApacheJIT: `buggy`/`fix` as `True`/`False`, no `lt`, per-file means.
    ApacheJit,
}

impl Layout {
    /// Parse a `--layout` value.
    pub fn from_name(name: &str) -> Option<Layout> {
        match name {
            "issta21" => Some(Layout::Issta21),
            "kamei" => Some(Layout::Kamei),
            "apachejit" => Some(Layout::ApacheJit),
            _ => None,
        }
    }

    /// The `--layout` name.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Issta21 => "issta21",
            Layout::Kamei => "kamei",
            Layout::ApacheJit => "apachejit",
        }
    }

    /// Recognise a layout from a header line.
    pub fn detect(header: &str) -> Option<Layout> {
        let cols: Vec<&str> = split_csv(header).into_iter().map(str::trim).collect();
        if cols.contains(&"_id") && cols.contains(&"entrophy") {
            Some(Layout::Issta21)
        } else if cols.contains(&"transactionid") && cols.contains(&"npt") {
            Some(Layout::Kamei)
        } else if cols.contains(&"commit_id") && cols.contains(&"buggy") {
            Some(Layout::ApacheJit)
        } else {
            None
        }
    }

    /// Features this layout does not carry (they read as 0).
    pub fn missing(self) -> &'static [Feature] {
        match self {
            Layout::ApacheJit => &[Feature::Lt],
            _ => &[],
        }
    }
}

/// Why a dataset could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DatasetError {
    /// The file has no header line.
    #[error("the dataset is empty")]
    Empty,
    /// A column the layout needs is not in the header.
    #[error("column `{column}` is missing from the header (layout {layout})")]
    MissingColumn {
        /// The layout being read.
        layout: &'static str,
        /// The missing column.
        column: &'static str,
    },
    /// A value could not be read.
    #[error("line {line}: column `{column}`: cannot read {value:?}")]
    BadValue {
        /// 1-based line number.
        line: usize,
        /// The column.
        column: String,
        /// The text found.
        value: String,
    },
}

/// Read every row of `text` (a whole CSV file) in `layout`; `None` detects it from the header.
/// The rows come back oldest first, with the typical values of [`crate::typical`] set. (An
/// ApacheJIT file mixes projects; their changes share one window.)
pub fn read(
    text: &str,
    layout: Option<Layout>,
) -> Result<(Layout, Vec<LabelledChange>), DatasetError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().enumerate();
    let (_, header) = lines.next().ok_or(DatasetError::Empty)?;
    let layout = match layout.or_else(|| Layout::detect(header)) {
        Some(l) => l,
        None => {
            return Err(DatasetError::MissingColumn {
                layout: "any known",
                column: "_id, transactionid or commit_id",
            });
        }
    };
    let header: Vec<String> = split_csv(header)
        .into_iter()
        .map(|c| c.trim().to_owned())
        .collect();
    let col = |name: &'static str| -> Result<usize, DatasetError> {
        header
            .iter()
            .position(|h| h == name)
            .ok_or(DatasetError::MissingColumn {
                layout: layout.name(),
                column: name,
            })
    };
    let spec = layout.columns();
    let mut index = Vec::with_capacity(spec.len());
    for (name, feature) in spec {
        index.push((*name, col(name)?, *feature));
    }
    let mut out = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        out.push(read_row(layout, &index, i + 1, line)?);
    }
    // What is typical lately is read off the changes before each one.
    out.sort_by_key(|c| c.time);
    crate::typical::fill(out.iter_mut().map(|c| &mut c.features));
    Ok((layout, out))
}

/// One CSV row: (column name, column index, feature) for id, time, label, then the features.
fn read_row(
    layout: Layout,
    index: &[(&'static str, usize, Option<Feature>)],
    line_no: usize,
    line: &str,
) -> Result<LabelledChange, DatasetError> {
    {
        let cells = split_csv(line);
        let cell = |c: usize, name: &str| -> Result<&str, DatasetError> {
            cells
                .get(c)
                .map(|s| s.trim())
                .ok_or_else(|| DatasetError::BadValue {
                    line: line_no,
                    column: name.to_owned(),
                    value: String::new(),
                })
        };
        let bad = |name: &str, v: &str| DatasetError::BadValue {
            line: line_no,
            column: name.to_owned(),
            value: v.to_owned(),
        };
        let (id_name, id_col, _) = index[0];
        let id = cell(id_col, id_name)?.to_owned();
        let (time_name, time_col, _) = index[1];
        let time_text = cell(time_col, time_name)?;
        let time = match layout {
            Layout::Kamei => {
                parse_kamei_date(time_text).ok_or_else(|| bad(time_name, time_text))?
            }
            _ => time_text
                .parse::<f64>()
                .map(|t| t as i64)
                .map_err(|_| bad(time_name, time_text))?,
        };
        let (label_name, label_col, _) = index[2];
        let label_text = cell(label_col, label_name)?;
        let risky = parse_flag(label_text).ok_or_else(|| bad(label_name, label_text))?;
        let mut features = FeatureVector::default();
        for &(name, c, feature) in &index[3..] {
            let Some(feature) = feature else { continue };
            let text = cell(c, name)?;
            let v = match parse_flag(text) {
                Some(b) if feature == Feature::Fix => f64::from(u8::from(b)),
                _ if text.is_empty() || text.eq_ignore_ascii_case("nan") => 0.0,
                _ => text.parse::<f64>().map_err(|_| bad(name, text))?,
            };
            features.set(feature, v);
        }
        match layout {
            Layout::Kamei => denormalise_kamei(&mut features),
            Layout::ApacheJit => {
                let nf = features.get(Feature::Nf).max(1.0);
                features.set(Feature::Nuc, features.get(Feature::Nuc) * nf);
            }
            Layout::Issta21 => {}
        }
        Ok(LabelledChange {
            id,
            time,
            features,
            risky,
        })
    }
}

impl Layout {
    /// The columns read, in order: id, time, label, then the features each maps to.
    fn columns(self) -> &'static [(&'static str, Option<Feature>)] {
        match self {
            Layout::Issta21 => &[
                ("_id", None),
                ("date", None),
                ("bug", None),
                ("ns", Some(Feature::Ns)),
                ("nd", Some(Feature::Nd)),
                ("nf", Some(Feature::Nf)),
                ("entrophy", Some(Feature::Entropy)),
                ("la", Some(Feature::La)),
                ("ld", Some(Feature::Ld)),
                ("lt", Some(Feature::Lt)),
                ("fix", Some(Feature::Fix)),
                ("ndev", Some(Feature::Ndev)),
                ("age", Some(Feature::Age)),
                ("nuc", Some(Feature::Nuc)),
                ("exp", Some(Feature::Exp)),
                ("rexp", Some(Feature::Rexp)),
                ("sexp", Some(Feature::Sexp)),
            ],
            Layout::Kamei => &[
                ("transactionid", None),
                ("commitdate", None),
                ("bug", None),
                ("ns", Some(Feature::Ns)),
                ("nm", Some(Feature::Nd)),
                ("nf", Some(Feature::Nf)),
                ("entropy", Some(Feature::Entropy)),
                ("la", Some(Feature::La)),
                ("ld", Some(Feature::Ld)),
                ("lt", Some(Feature::Lt)),
                ("fix", Some(Feature::Fix)),
                ("ndev", Some(Feature::Ndev)),
                ("pd", Some(Feature::Age)),
                ("npt", Some(Feature::Nuc)),
                ("exp", Some(Feature::Exp)),
                ("rexp", Some(Feature::Rexp)),
                ("sexp", Some(Feature::Sexp)),
            ],
            Layout::ApacheJit => &[
                ("commit_id", None),
                ("author_date", None),
                ("buggy", None),
                ("ns", Some(Feature::Ns)),
                ("nd", Some(Feature::Nd)),
                ("nf", Some(Feature::Nf)),
                ("ent", Some(Feature::Entropy)),
                ("la", Some(Feature::La)),
                ("ld", Some(Feature::Ld)),
                ("fix", Some(Feature::Fix)),
                ("ndev", Some(Feature::Ndev)),
                ("age", Some(Feature::Age)),
                ("nuc", Some(Feature::Nuc)),
                ("aexp", Some(Feature::Exp)),
                ("arexp", Some(Feature::Rexp)),
                ("asexp", Some(Feature::Sexp)),
            ],
        }
    }
}

/// Undo Kamei 2013's normalisations: `lt` per file, `la`/`ld` per line of `lt`, `npt` per file,
/// entropy divided by `log2(nf)`.
fn denormalise_kamei(f: &mut FeatureVector) {
    let nf = f.get(Feature::Nf);
    let lt = f.get(Feature::Lt) * nf;
    f.set(Feature::Lt, lt);
    f.set(Feature::La, f.get(Feature::La) * lt);
    f.set(Feature::Ld, f.get(Feature::Ld) * lt);
    f.set(Feature::Nuc, f.get(Feature::Nuc) * nf);
    if nf > 1.0 {
        f.set(Feature::Entropy, f.get(Feature::Entropy) * nf.log2());
    }
}

fn parse_flag(text: &str) -> Option<bool> {
    match text {
        "1" | "1.0" => Some(true),
        "0" | "0.0" => Some(false),
        t if t.eq_ignore_ascii_case("true") => Some(true),
        t if t.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// `2001/12/12 17:41` (or with `-` separators, optional seconds) as unix seconds, UTC.
fn parse_kamei_date(text: &str) -> Option<i64> {
    let text = text.trim_matches('"');
    let (date, clock) = text.split_once(' ').unwrap_or((text, "0:0"));
    let mut d = date.split(['/', '-']).map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut c = clock.split(':').map(|p| p.parse::<i64>().ok());
    let h = c.next().flatten().unwrap_or(0);
    let min = c.next().flatten().unwrap_or(0);
    let s = c.next().flatten().unwrap_or(0);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    Some(days_from_civil(y, m, day) * 86_400 + h * 3600 + min * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Split one CSV line on commas, honouring double quotes (no embedded newlines).
fn split_csv(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, b) in line.bytes().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                out.push(line[start..i].trim_matches('"'));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(line[start..].trim_end_matches('\r').trim_matches('"'));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issta21_rows_ignore_the_label_copy() {
        let text = ",_id,date,bug,__,ns,nd,nf,entrophy,la,ld,lt,fix,ndev,age,nuc,exp,rexp,sexp\n\
                    0,abc,1451578374,1,0,1,2,3,0.5,10,4,214,1,15,84.5,53,1842,349.25,7\n";
        let (layout, rows) = read(text, None).unwrap();
        assert_eq!(layout, Layout::Issta21);
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(
            (r.id.as_str(), r.time, r.risky),
            ("abc", 1_451_578_374, true)
        );
        assert_eq!(r.features.get(Feature::Nd), 2.0);
        assert_eq!(r.features.get(Feature::Entropy), 0.5);
        assert_eq!(r.features.get(Feature::Sexp), 7.0);
    }

    #[test]
    fn kamei_rows_are_denormalised() {
        let text = "transactionid,commitdate,ns,nm,nf,entropy,la,ld,lt,fix,ndev,pd,npt,exp,rexp,sexp,bug\n\
                    7,2001/12/12 17:41,1,1,4,0.5,0.25,0.1,50,FALSE,3,10,2,5,1.5,2,1\n";
        let (layout, rows) = read(text, None).unwrap();
        assert_eq!(layout, Layout::Kamei);
        let f = rows[0].features;
        assert_eq!(f.get(Feature::Lt), 200.0);
        assert_eq!(f.get(Feature::La), 50.0);
        assert_eq!(f.get(Feature::Ld), 20.0);
        assert_eq!(f.get(Feature::Nuc), 8.0);
        assert_eq!(f.get(Feature::Entropy), 1.0);
        assert_eq!(f.get(Feature::Fix), 0.0);
        assert!(rows[0].risky);
        // 2001-12-12 17:41 UTC
        assert_eq!(rows[0].time, 1_008_178_860);
    }

    #[test]
    fn apachejit_rows_read_booleans_and_lack_lt() {
        let text = "commit_id,project,buggy,fix,year,author_date,la,ld,nf,nd,ns,ent,ndev,age,nuc,aexp,arexp,asexp\n\
                    c1,apache/x,True,False,2010,1262304000,10,2,2,1,1,0.9,3.5,12.0,4.0,100,20.5,30\n";
        let (layout, rows) = read(text, None).unwrap();
        assert_eq!(layout, Layout::ApacheJit);
        assert_eq!(layout.missing(), &[Feature::Lt]);
        let f = rows[0].features;
        assert!(rows[0].risky);
        assert_eq!(f.get(Feature::Fix), 0.0);
        assert_eq!(f.get(Feature::Nuc), 8.0);
        assert_eq!(f.get(Feature::Lt), 0.0);
        assert_eq!(f.get(Feature::Exp), 100.0);
    }

    #[test]
    fn bad_values_name_the_line_and_column() {
        let text = ",_id,date,bug,__,ns,nd,nf,entrophy,la,ld,lt,fix,ndev,age,nuc,exp,rexp,sexp\n\
                    0,abc,1451578374,0,0,1,1,1,0.0,1,0,214,1,15,84.0,53,1842,349.25,7\n\
                    1,def,1451578375,0,0,1,1,1,0.0,lots,0,214,1,15,84.0,53,1842,349.25,7\n";
        let err = read(text, None).unwrap_err();
        assert_eq!(err.to_string(), "line 3: column `la`: cannot read \"lots\"");
        let err = read("a,b,c\n1,2,3\n", None).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        let err = read("a,b\n", Some(Layout::Kamei)).unwrap_err();
        assert!(err.to_string().contains("`transactionid`"), "{err}");
    }
}
