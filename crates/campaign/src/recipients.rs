//! The recipient file: a CSV with a header row, a `phone` (or `to`) column and one column per
//! template variable, read as a stream so that a million rows take the memory of one.
//!
//! Korean spreadsheet programs (Excel in a Korean Windows, Hangul Office) save "CSV" in CP949,
//! the others in UTF-8, often with a byte-order mark; "Unicode text" is UTF-16 with a BOM and
//! tabs. [`Encoding::Auto`] tells them apart from the first bytes: a BOM decides; otherwise text
//! that is valid UTF-8 is UTF-8 and anything else is CP949 (encoding_rs's EUC-KR, which is
//! Windows' code page 949, a superset of EUC-KR). A header whose line has tabs and no commas is
//! read tab-separated.
//!
//! Every data row is either [`Row::Valid`] (the address normalised by the caller's rule, the
//! variables by column name) or [`Row::Invalid`] with its line number and the reason; nothing
//! is dropped silently. [`Fingerprints`] finds repeated recipients in constant memory per row.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read};

/// How the file's bytes are text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// From the byte-order mark, else UTF-8 when the start of the file is valid UTF-8, else CP949.
    #[default]
    Auto,
    /// UTF-8 (a BOM is skipped).
    Utf8,
    /// CP949 / EUC-KR.
    Cp949,
}

impl std::str::FromStr for Encoding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "auto" => Ok(Self::Auto),
            "utf-8" | "utf8" => Ok(Self::Utf8),
            "cp949" | "euc-kr" | "euckr" | "ms949" | "uhc" => Ok(Self::Cp949),
            other => Err(format!("--encoding {other:?}: use auto, utf-8 or cp949 (EUC-KR)")),
        }
    }
}

/// What the file turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// UTF-8, with or without a BOM.
    Utf8,
    /// UTF-16 (little or big endian) with a BOM.
    Utf16,
    /// CP949 / EUC-KR.
    Cp949,
}

impl Detected {
    /// `UTF-8`, `UTF-16`, `CP949`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Utf8 => "UTF-8",
            Self::Utf16 => "UTF-16",
            Self::Cp949 => "CP949",
        }
    }
}

/// Why the file cannot be read at all (as opposed to a bad row).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Reading failed.
    #[error("cannot read the recipient file: {0}")]
    Io(#[from] io::Error),
    /// Not even a header.
    #[error("the recipient file is empty: its first line must be a header such as phone,name")]
    Empty,
    /// The header names no recipient column.
    #[error("the header has no `phone` (or `to`) column; it has: {}", .0.join(", "))]
    NoAddressColumn(Vec<String>),
    /// Template variables without a column.
    #[error("the header has no column for the template variable(s) {}: add a column of that name", .0.join(", "))]
    MissingColumns(Vec<String>),
    /// A column name twice.
    #[error("the header names the column {0:?} twice")]
    DuplicateColumn(String),
    /// The header itself is malformed.
    #[error("cannot read the header: {0}")]
    Header(String),
}

/// One data row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    /// A recipient.
    Valid(Recipient),
    /// A row that cannot be sent, and why.
    Invalid(Invalid),
}

/// A valid row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The line the row starts on (the header is line 1).
    pub line: u64,
    /// The address in the channel's form (the caller's normaliser).
    pub address: String,
    /// Every other column, by header name (trimmed values).
    pub variables: BTreeMap<String, String>,
}

/// An invalid row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The line the row starts on.
    pub line: u64,
    /// Why it cannot be sent.
    pub reason: String,
}

/// The parsed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The recipient column's name as written.
    pub address_column: String,
    /// The other columns, in file order.
    pub variables: Vec<String>,
}

/// The normaliser of the address column: the channel's form of a number, or why it is not one.
pub type Normalise = dyn Fn(&str) -> Result<String, String> + Send + Sync;

/// Reads recipient rows from a stream.
pub struct RecipientReader<'n, R: Read> {
    csv: csv::Reader<Counting<Decoded<R>>>,
    lines: std::sync::Arc<std::sync::Mutex<Newlines>>,
    header: Header,
    address_index: usize,
    names: Vec<Option<String>>,
    required: Vec<String>,
    normalise: &'n Normalise,
    detected: Detected,
    record: csv::StringRecord,
    done: bool,
}

impl<R: Read> std::fmt::Debug for RecipientReader<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecipientReader").field("header", &self.header).field("detected", &self.detected).finish()
    }
}

/// Bytes sniffed for the encoding and the delimiter.
const SNIFF: usize = 16 * 1024;

impl<'n, R: Read> RecipientReader<'n, R> {
    /// Opens the stream: reads the header and checks that every `required` template variable
    /// has a column.
    ///
    /// # Errors
    /// A [`FileError`] for a file that cannot be read, has no header, no `phone`/`to` column or
    /// misses a variable's column.
    pub fn new(
        mut inner: R,
        encoding: Encoding,
        required: &[String],
        normalise: &'n Normalise,
    ) -> Result<Self, FileError> {
        let mut prefix = vec![0; SNIFF];
        let mut filled = 0;
        while filled < SNIFF {
            let n = inner.read(&mut prefix[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        prefix.truncate(filled);
        let detected = detect(&prefix, encoding);
        let decoder = match detected {
            Detected::Utf8 => {
                if prefix.starts_with(b"\xEF\xBB\xBF") {
                    prefix.drain(..3);
                }
                None
            }
            Detected::Utf16 => Some(encoding_rs::UTF_16LE.new_decoder_with_bom_removal()),
            Detected::Cp949 => Some(encoding_rs::EUC_KR.new_decoder_without_bom_handling()),
        };
        let mut decoded = Decoded::new(prefix, inner, decoder);
        let delimiter = decoded.first_line_delimiter()?;
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Newlines::default()));
        let counting = Counting { inner: decoded, lines: lines.clone() };
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .delimiter(delimiter)
            .trim(csv::Trim::All)
            .from_reader(counting);
        let raw = csv.headers().map_err(|e| FileError::Header(e.to_string()))?.clone();
        if raw.is_empty() || raw.iter().all(str::is_empty) {
            return Err(FileError::Empty);
        }
        let columns: Vec<String> = raw.iter().map(|c| c.trim().to_owned()).collect();
        let mut seen = HashMap::new();
        for c in &columns {
            if !c.is_empty() && seen.insert(c.to_lowercase(), ()).is_some() {
                return Err(FileError::DuplicateColumn(c.clone()));
            }
        }
        let address_index = ["phone", "to"]
            .iter()
            .find_map(|want| columns.iter().position(|c| c.eq_ignore_ascii_case(want)))
            .ok_or_else(|| FileError::NoAddressColumn(columns.clone()))?;
        let missing: Vec<String> = required.iter().filter(|r| !columns.iter().any(|c| c == *r)).cloned().collect();
        if !missing.is_empty() {
            return Err(FileError::MissingColumns(missing));
        }
        let names =
            columns.iter().enumerate().map(|(i, c)| (i != address_index && !c.is_empty()).then(|| c.clone())).collect();
        let header = Header {
            address_column: columns[address_index].clone(),
            variables: columns
                .iter()
                .enumerate()
                .filter(|(i, c)| *i != address_index && !c.is_empty())
                .map(|(_, c)| c.clone())
                .collect(),
        };
        Ok(Self {
            csv,
            lines,
            header,
            address_index,
            names,
            required: required.to_vec(),
            normalise,
            detected,
            record: csv::StringRecord::new(),
            done: false,
        })
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The encoding the file was read in.
    pub fn detected(&self) -> Detected {
        self.detected
    }

    fn row(&self, line: u64) -> Row {
        let record = &self.record;
        let invalid = |reason: String| Row::Invalid(Invalid { line, reason });
        if record.iter().any(|f| f.contains('\u{FFFD}')) {
            return invalid(format!(
                "characters that are not {} (is the file in another encoding? try --encoding)",
                self.detected.label()
            ));
        }
        let raw = record.get(self.address_index).unwrap_or_default();
        if raw.is_empty() {
            return invalid(format!("the {} column is empty", self.header.address_column));
        }
        let address = match (self.normalise)(raw) {
            Ok(address) => address,
            Err(reason) => return invalid(reason),
        };
        let mut variables = BTreeMap::new();
        for (i, name) in self.names.iter().enumerate() {
            if let Some(name) = name {
                variables.insert(name.clone(), record.get(i).unwrap_or_default().to_owned());
            }
        }
        let empty: Vec<&str> = self
            .required
            .iter()
            .filter(|r| variables.get(*r).is_none_or(String::is_empty))
            .map(String::as_str)
            .collect();
        if !empty.is_empty() {
            return invalid(format!("empty value for the template variable(s) {}", empty.join(", ")));
        }
        Row::Valid(Recipient { line, address, variables })
    }
}

impl<R: Read> Iterator for RecipientReader<'_, R> {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        loop {
            if self.done {
                return None;
            }
            let mut record = std::mem::take(&mut self.record);
            let read = self.csv.read_record(&mut record);
            // The line the record starts on: csv's own count starts at the terminators it
            // skipped (blank lines, the LF of a CRLF), so count the line breaks before the
            // record's last byte and take back those inside its fields.
            let end = self.csv.position().byte();
            let before_end =
                self.lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner).before(end.saturating_sub(1));
            let inside: u64 = record.iter().map(|f| f.bytes().filter(|b| *b == b'\n').count() as u64).sum();
            let line = (before_end + 1).saturating_sub(inside);
            self.record = record;
            match read {
                Ok(false) => {
                    self.done = true;
                    return None;
                }
                // Blank lines (and rows of empty cells) are not recipients, nor errors.
                Ok(true) if self.record.iter().all(str::is_empty) => {}
                Ok(true) => return Some(self.row(line)),
                Err(e) => {
                    let reason = match e.kind() {
                        csv::ErrorKind::Utf8 { .. } => {
                            "bytes that are not UTF-8 (save the file as UTF-8 or CP949, or pass --encoding)".to_owned()
                        }
                        csv::ErrorKind::Io(_) => {
                            self.done = true;
                            format!("the file could not be read past this line: {e}")
                        }
                        _ => e.to_string(),
                    };
                    return Some(Row::Invalid(Invalid { line, reason }));
                }
            }
        }
    }
}

/// The encoding of a file that starts with `prefix`.
pub fn detect(prefix: &[u8], asked: Encoding) -> Detected {
    match asked {
        Encoding::Utf8 => return Detected::Utf8,
        Encoding::Cp949 => return Detected::Cp949,
        Encoding::Auto => {}
    }
    if prefix.starts_with(b"\xEF\xBB\xBF") {
        return Detected::Utf8;
    }
    if prefix.starts_with(b"\xFF\xFE") || prefix.starts_with(b"\xFE\xFF") {
        return Detected::Utf16;
    }
    match std::str::from_utf8(prefix) {
        Ok(_) => Detected::Utf8,
        // Cut inside a character at the end of the sniffed bytes: still UTF-8.
        Err(e) if e.error_len().is_none() => Detected::Utf8,
        Err(_) => Detected::Cp949,
    }
}

/// A reader of UTF-8: the file's bytes as they are, or decoded from UTF-16 / CP949.
struct Decoded<R> {
    inner: R,
    /// Raw bytes read but not yet handed on (or decoded).
    pending: Vec<u8>,
    pos: usize,
    decoder: Option<encoding_rs::Decoder>,
    out: Vec<u8>,
    out_pos: usize,
    eof: bool,
    done: bool,
}

impl<R: Read> Decoded<R> {
    fn new(prefix: Vec<u8>, inner: R, decoder: Option<encoding_rs::Decoder>) -> Self {
        Self { inner, pending: prefix, pos: 0, decoder, out: Vec::new(), out_pos: 0, eof: false, done: false }
    }

    /// `\t` when the first line of the text has tabs and no commas, else `,`. Reads nothing
    /// from the stream: looks at what was sniffed, decoded into the output buffer.
    fn first_line_delimiter(&mut self) -> io::Result<u8> {
        let line: Vec<u8> = if self.decoder.is_some() {
            // Decode until the first line is complete; `read` hands the output on afterwards.
            while !self.out[self.out_pos..].contains(&b'\n') && !self.done && self.out.len() < SNIFF * 4 {
                let mut out = std::mem::take(&mut self.out);
                self.decode_more(&mut out)?;
                self.out = out;
            }
            self.out[self.out_pos..].iter().copied().take_while(|b| *b != b'\n').collect()
        } else {
            self.pending[self.pos..].iter().copied().take_while(|b| *b != b'\n').collect()
        };
        let tabs = line.contains(&b'\t');
        let commas = line.contains(&b',');
        Ok(if tabs && !commas { b'\t' } else { b',' })
    }

    /// Decodes the next piece of input into `out` (appending).
    fn decode_more(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        let Some(decoder) = self.decoder.as_mut() else { return Ok(()) };
        if self.pos >= self.pending.len() && !self.eof {
            self.pending.resize(8192, 0);
            let n = self.inner.read(&mut self.pending)?;
            self.pending.truncate(n);
            self.pos = 0;
            self.eof = n == 0;
        }
        let src = &self.pending[self.pos..];
        let room = decoder.max_utf8_buffer_length(src.len()).unwrap_or(64 * 1024).max(16);
        let start = out.len();
        out.resize(start + room, 0);
        let (result, read, written, _) = decoder.decode_to_utf8(src, &mut out[start..], self.eof);
        out.truncate(start + written);
        self.pos += read;
        if self.eof && result == encoding_rs::CoderResult::InputEmpty {
            self.done = true;
        }
        Ok(())
    }
}

impl<R: Read> Read for Decoded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.decoder.is_none() {
            if self.pos < self.pending.len() {
                let n = (self.pending.len() - self.pos).min(buf.len());
                buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            return self.inner.read(buf);
        }
        loop {
            if self.out_pos < self.out.len() {
                let n = (self.out.len() - self.out_pos).min(buf.len());
                buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
                self.out_pos += n;
                if self.out_pos == self.out.len() {
                    self.out.clear();
                    self.out_pos = 0;
                }
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            let mut out = std::mem::take(&mut self.out);
            out.clear();
            self.decode_more(&mut out)?;
            self.out = out;
            self.out_pos = 0;
        }
    }
}

/// Where the line breaks of the text handed to the CSV parser are, so a record's line is
/// known exactly; offsets the parser has passed are forgotten (the memory is the parser's
/// read-ahead, not the file).
#[derive(Debug, Default)]
struct Newlines {
    /// Bytes handed on so far.
    offset: u64,
    /// Offsets of line breaks not yet passed.
    pending: std::collections::VecDeque<u64>,
    /// Line breaks already passed.
    passed: u64,
}

impl Newlines {
    /// Line breaks before byte `at` (calls come with increasing `at`).
    fn before(&mut self, at: u64) -> u64 {
        while self.pending.front().is_some_and(|o| *o < at) {
            self.pending.pop_front();
            self.passed += 1;
        }
        self.passed
    }
}

/// Counts the line breaks of what it hands on.
struct Counting<R> {
    inner: R,
    lines: std::sync::Arc<std::sync::Mutex<Newlines>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut lines = self.lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let base = lines.offset;
        for (i, b) in buf[..n].iter().enumerate() {
            if *b == b'\n' {
                lines.pending.push_back(base + i as u64);
            }
        }
        lines.offset += n as u64;
        Ok(n)
    }
}

/// Finds recipients already seen, keeping 8 bytes per distinct recipient (a fingerprint and
/// the line it was first seen on would be 16: only the first line of the *first* duplicate of
/// each is kept, in a small side table).
#[derive(Debug, Default)]
pub struct Fingerprints {
    seen: HashMap<u64, u64>,
}

impl Fingerprints {
    /// A new, empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// `None` the first time `address` is seen, else the line it was first seen on.
    pub fn check(&mut self, address: &str, line: u64) -> Option<u64> {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(address.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        match self.seen.entry(u64::from_be_bytes(first)) {
            std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(line);
                None
            }
        }
    }

    /// Distinct recipients seen.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether none was seen.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// What a pass over the file found, for the summary `create` prints.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Data rows read (blank lines excluded).
    pub rows: u64,
    /// Distinct valid recipients.
    pub valid: u64,
    /// Rows repeating an earlier recipient (removed).
    pub duplicates: u64,
    /// The first duplicates, as (line, line of the first occurrence).
    pub duplicate_examples: Vec<(u64, u64)>,
    /// Invalid rows in total.
    pub invalid_count: u64,
    /// The first invalid rows (at most [`Tally::KEEP`]).
    pub invalid: Vec<Invalid>,
}

impl Tally {
    /// How many invalid rows and duplicates are kept for the summary.
    pub const KEEP: usize = 200;

    /// Counts an invalid row.
    pub fn invalid(&mut self, invalid: Invalid) {
        self.rows += 1;
        self.invalid_count += 1;
        if self.invalid.len() < Self::KEEP {
            self.invalid.push(invalid);
        }
    }

    /// Counts a valid row; `Some(first line)` when it repeats an earlier recipient.
    pub fn valid(&mut self, line: u64, duplicate_of: Option<u64>) {
        self.rows += 1;
        match duplicate_of {
            Some(first) => {
                self.duplicates += 1;
                if self.duplicate_examples.len() < Self::KEEP {
                    self.duplicate_examples.push((line, first));
                }
            }
            None => self.valid += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits(raw: &str) -> Result<String, String> {
        let d: String = raw.chars().filter(char::is_ascii_digit).collect();
        if d.len() == 11 && d.starts_with("010") { Ok(d) } else { Err(format!("{raw:?} is not a mobile number")) }
    }

    fn read(bytes: &[u8], required: &[&str]) -> Result<(Header, Detected, Vec<Row>), FileError> {
        let required: Vec<String> = required.iter().map(|s| (*s).to_owned()).collect();
        let reader = RecipientReader::new(bytes, Encoding::Auto, &required, &digits)?;
        let header = reader.header().clone();
        let detected = reader.detected();
        Ok((header, detected, reader.collect()))
    }

    type Line = (u64, String, Vec<(String, String)>);

    fn valid(rows: &[Row]) -> Vec<Line> {
        rows.iter()
            .filter_map(|r| match r {
                Row::Valid(r) => Some((r.line, r.address.clone(), r.variables.clone().into_iter().collect())),
                Row::Invalid(_) => None,
            })
            .collect()
    }

    fn invalid(rows: &[Row]) -> Vec<(u64, String)> {
        rows.iter()
            .filter_map(|r| match r {
                Row::Invalid(i) => Some((i.line, i.reason.clone())),
                Row::Valid(_) => None,
            })
            .collect()
    }

    #[test]
    fn utf8_with_and_without_bom() {
        let body = "phone,name\n010-1234-5678,홍길동\n01087654321,김철수\n";
        for bytes in [body.as_bytes().to_vec(), [b"\xEF\xBB\xBF".as_slice(), body.as_bytes()].concat()] {
            let (header, detected, rows) = read(&bytes, &["name"]).unwrap();
            assert_eq!(detected, Detected::Utf8);
            assert_eq!(header, Header { address_column: "phone".into(), variables: vec!["name".into()] });
            assert_eq!(
                valid(&rows),
                [
                    (2, "01012345678".into(), vec![("name".into(), "홍길동".into())]),
                    (3, "01087654321".into(), vec![("name".into(), "김철수".into())]),
                ]
            );
        }
    }

    #[test]
    fn cp949_files_from_korean_spreadsheets() {
        let text = "to,이름,쿠폰\n01012345678,홍길동,할인쿠폰\n";
        let (bytes, _, unmappable) = encoding_rs::EUC_KR.encode(text);
        assert!(!unmappable);
        assert!(std::str::from_utf8(&bytes).is_err(), "really not UTF-8");
        let (header, detected, rows) = read(&bytes, &["이름"]).unwrap();
        assert_eq!(detected, Detected::Cp949);
        assert_eq!(header.address_column, "to");
        assert_eq!(header.variables, ["이름", "쿠폰"]);
        assert_eq!(
            valid(&rows),
            [(2, "01012345678".into(), vec![("이름".into(), "홍길동".into()), ("쿠폰".into(), "할인쿠폰".into())])]
        );
    }

    #[test]
    fn cp949_across_the_sniffed_prefix_and_long_files() {
        // Far more than the sniffed 16 KiB, so the decoder works across reads.
        let mut text = String::from("phone,name\n");
        for i in 0..3_000 {
            text.push_str(&format!("010{:08},고객{i}\n", i));
        }
        let (bytes, _, _) = encoding_rs::EUC_KR.encode(&text);
        assert!(bytes.len() > SNIFF * 2);
        let (_, detected, rows) = read(&bytes, &["name"]).unwrap();
        assert_eq!(detected, Detected::Cp949);
        let valid = valid(&rows);
        assert_eq!(valid.len(), 3_000);
        assert_eq!(valid[2_999], (3_001, "01000002999".into(), vec![("name".into(), "고객2999".into())]));
    }

    #[test]
    fn utf16_unicode_text_with_tabs() {
        let text = "phone\tname\r\n01012345678\t홍길동\r\n";
        let mut bytes = vec![0xFF, 0xFE];
        for unit in text.encode_utf16() {
            bytes.extend_from_slice(&unit.to_le_bytes());
        }
        let (header, detected, rows) = read(&bytes, &["name"]).unwrap();
        assert_eq!(detected, Detected::Utf16);
        assert_eq!(header.variables, ["name"]);
        assert_eq!(valid(&rows), [(2, "01012345678".into(), vec![("name".into(), "홍길동".into())])]);
    }

    #[test]
    fn bad_rows_have_line_numbers_and_reasons() {
        let body = "Phone,name,code\n\
                    01012345678,Kim,A1\n\
                    \n\
                    02-123-4567,Lee,B2\n\
                    ,Park,C3\n\
                    01011112222,,D4\n\
                    \"01033334444\",\"Choi, Jr.\",\"E\n5\"\n\
                    01055556666,Jung,F6\n";
        let (_, _, rows) = read(body.as_bytes(), &["name"]).unwrap();
        assert_eq!(
            invalid(&rows),
            [
                (4, "\"02-123-4567\" is not a mobile number".into()),
                (5, "the Phone column is empty".into()),
                (6, "empty value for the template variable(s) name".into()),
            ]
        );
        let valid = valid(&rows);
        assert_eq!(valid.iter().map(|v| v.0).collect::<Vec<_>>(), [2, 7, 9], "a quoted line break spans lines");
        assert_eq!(valid[1].2[0], ("code".into(), "E\n5".into()));
        assert_eq!(valid[1].2[1], ("name".into(), "Choi, Jr.".into()));
    }

    #[test]
    fn invalid_utf8_in_a_utf8_file_is_one_bad_row() {
        let mut bytes = b"phone,name\n01012345678,Kim\n".to_vec();
        // Valid UTF-8 for the whole sniffed prefix, then a stray byte further on.
        bytes.extend(std::iter::repeat_n(b"01012345678,Kim\n".as_slice(), 1_200).flatten());
        bytes.extend_from_slice(b"01099998888,K\xFFm\n01077776666,Lee\n");
        let (_, detected, rows) = read(&bytes, &[]).unwrap();
        assert_eq!(detected, Detected::Utf8);
        let bad = invalid(&rows);
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert_eq!(bad[0].0, 1_203);
        assert!(bad[0].1.contains("not UTF-8"), "{}", bad[0].1);
        assert_eq!(valid(&rows).last().unwrap().1, "01077776666", "rows after it are read");
    }

    #[test]
    fn header_problems_stop_the_file() {
        assert!(matches!(read(b"", &[]), Err(FileError::Empty)));
        let err = read(b"number,name\n010,Kim\n", &[]).unwrap_err();
        assert_eq!(err.to_string(), "the header has no `phone` (or `to`) column; it has: number, name");
        let err = read(b"phone,name\n01012345678,Kim\n", &["name", "code"]).unwrap_err();
        assert!(err.to_string().contains("code"), "{err}");
        assert!(matches!(read(b"phone,name,Name\n", &[]), Err(FileError::DuplicateColumn(_))));
    }

    #[test]
    fn the_tally_counts_duplicates_once_per_repeat() {
        let mut seen = Fingerprints::new();
        let mut tally = Tally::default();
        for (line, address) in [(2, "a"), (3, "b"), (4, "a"), (5, "a")] {
            let first = seen.check(address, line);
            tally.valid(line, first);
        }
        tally.invalid(Invalid { line: 6, reason: "x".into() });
        assert_eq!((tally.rows, tally.valid, tally.duplicates, tally.invalid_count), (5, 2, 2, 1));
        assert_eq!(tally.duplicate_examples, [(4, 2), (5, 2)]);
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn encodings_are_named_as_operators_write_them() {
        assert_eq!("EUC-KR".parse::<Encoding>().unwrap(), Encoding::Cp949);
        assert_eq!("utf8".parse::<Encoding>().unwrap(), Encoding::Utf8);
        assert!("latin1".parse::<Encoding>().is_err());
    }
}
