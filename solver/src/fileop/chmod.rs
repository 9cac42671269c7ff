//! `--chmod` values: octal bits or a chmod(1) symbolic mode, applied as
//! BuildKit applies them (its mode package is BSD's `setmode(3)` with a
//! zero umask, so `+x` means `a+x`).
//!
//! Written by hand: no maintained crate parses BSD symbolic modes without
//! pulling in a coreutils runtime, and the grammar is small.

const ISUID: u32 = 0o4000;
const ISGID: u32 = 0o2000;
const ISTXT: u32 = 0o1000;
const RWXU: u32 = 0o700;
const RWXG: u32 = 0o070;
const RWXO: u32 = 0o007;
const STANDARD: u32 = ISUID | ISGID | RWXU | RWXG | RWXO;
const R_ALL: u32 = 0o444;
const W_ALL: u32 = 0o222;
const X_ALL: u32 = 0o111;

const CLEAR: u8 = 1;
const SET: u8 = 2;
const GBITS: u8 = 4;
const OBITS: u8 = 8;
const UBITS: u8 = 16;

/// A parsed `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    /// Octal bits (at most `07777`): every copied file and directory gets
    /// exactly these bits.
    Octal(u32),
    /// A symbolic mode such as `u+x,go-w` or `a=rX`, applied to each
    /// file's own mode.
    Symbolic(Vec<Cmd>),
}

/// One step of a symbolic mode (setmode's `bitcmd`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    op: u8,
    flags: u8,
    bits: u32,
}

/// A `--chmod` value that is neither octal up to 07777 nor a symbolic mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid chmod parameter: {0:?}: it should be octal (0 to 07777) or a symbolic mode such as u+x,go-w")]
pub struct BadChmod(pub String);

impl Chmod {
    /// Parses an octal or symbolic mode.
    pub fn parse(s: &str) -> Result<Chmod, BadChmod> {
        let bad = || BadChmod(s.to_string());
        if s.is_empty() {
            return Err(bad());
        }
        if s.as_bytes()[0].is_ascii_digit() {
            let v = u32::from_str_radix(s, 8).map_err(|_| bad())?;
            if v > 0o7777 {
                return Err(bad());
            }
            return Ok(Chmod::Octal(v));
        }
        parse_symbolic(s.as_bytes())
            .map(Chmod::Symbolic)
            .ok_or_else(bad)
    }

    /// The new permission bits (07777) of a file whose current mode is
    /// `mode` (`is_dir` matters for `X`).
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        match self {
            Chmod::Octal(v) => *v,
            Chmod::Symbolic(cmds) => apply_symbolic(cmds, mode & 0o7777, is_dir),
        }
    }

    /// The mode of a parent directory created for the copy: BuildKit
    /// creates them with the octal `--chmod` bits (permission bits only),
    /// and with 0755 for a symbolic mode or none.
    pub fn created_dir_mode(this: Option<&Chmod>) -> u32 {
        match this {
            Some(Chmod::Octal(v)) => v & 0o777,
            _ => 0o755,
        }
    }
}

fn add(cmds: &mut Vec<Cmd>, op: u8, who: u32, oparg: u32) {
    // Zero umask: the mask of setmode is all bits.
    let mask = !0u32;
    let mut op = op;
    if op == b'=' {
        cmds.push(Cmd {
            op: b'-',
            flags: 0,
            bits: if who != 0 { who } else { STANDARD },
        });
        op = b'+';
    }
    match op {
        b'+' | b'-' | b'X' => cmds.push(Cmd {
            op,
            flags: 0,
            bits: if who != 0 { who & oparg } else { mask & oparg },
        }),
        _ => {
            // Copy of the u, g or o bits; `oparg` is the operator.
            let mut flags = 0;
            let bits;
            if who != 0 {
                if who & 0o400 != 0 {
                    flags |= UBITS;
                }
                if who & 0o040 != 0 {
                    flags |= GBITS;
                }
                if who & 0o004 != 0 {
                    flags |= OBITS;
                }
                bits = !0;
            } else {
                flags = UBITS | GBITS | OBITS;
                bits = mask;
            }
            flags |= match oparg as u8 {
                b'+' => SET,
                b'-' => CLEAR,
                _ => SET | CLEAR,
            };
            cmds.push(Cmd { op, flags, bits });
        }
    }
}

fn parse_symbolic(mut s: &[u8]) -> Option<Vec<Cmd>> {
    let mut cmds = Vec::new();
    let mut equal_done;
    loop {
        let mut who = 0u32;
        loop {
            match s.first()? {
                b'a' => who |= STANDARD,
                b'u' => who |= ISUID | RWXU,
                b'g' => who |= ISGID | RWXG,
                b'o' => who |= RWXO,
                _ => break,
            }
            s = &s[1..];
        }
        loop {
            let op = *s.first()?;
            s = &s[1..];
            if !matches!(op, b'+' | b'-' | b'=') {
                return None;
            }
            equal_done = false;
            who &= !ISTXT;
            let mut perm = 0u32;
            let mut perm_x = 0u32;
            loop {
                match s.first().copied() {
                    Some(b'r') => perm |= R_ALL,
                    Some(b's') => {
                        if who == 0 || who & !RWXO != 0 {
                            perm |= ISUID | ISGID;
                        }
                    }
                    Some(b't') => {
                        if who == 0 || who & !RWXO != 0 {
                            who |= ISTXT;
                            perm |= ISTXT;
                        }
                    }
                    Some(b'w') => perm |= W_ALL,
                    Some(b'X') => {
                        if op != b'-' {
                            perm_x = X_ALL;
                        } else {
                            perm |= X_ALL;
                        }
                    }
                    Some(b'x') => perm |= X_ALL,
                    Some(c @ (b'u' | b'g' | b'o')) => {
                        if perm != 0 {
                            add(&mut cmds, op, who, perm);
                            perm = 0;
                        }
                        if op == b'=' {
                            equal_done = true;
                        }
                        if perm_x != 0 {
                            add(&mut cmds, b'X', who, perm_x);
                            perm_x = 0;
                        }
                        add(&mut cmds, c, who, op as u32);
                    }
                    _ => {
                        if perm != 0 || (op == b'=' && !equal_done) {
                            add(&mut cmds, op, who, perm);
                        }
                        if perm_x != 0 {
                            add(&mut cmds, b'X', who, perm_x);
                        }
                        break;
                    }
                }
                s = &s[1..];
            }
            match s.first() {
                None => return Some(cmds),
                Some(b',') => {
                    s = &s[1..];
                    break;
                }
                Some(_) => continue,
            }
        }
    }
}

fn apply_symbolic(cmds: &[Cmd], omode: u32, is_dir: bool) -> u32 {
    let mut new = omode;
    for c in cmds {
        let copy = |new: &mut u32, value: u32| {
            if c.flags & CLEAR != 0 {
                let clr = if c.flags & SET != 0 { RWXO } else { value };
                if c.flags & UBITS != 0 {
                    *new &= !((clr << 6) & c.bits);
                }
                if c.flags & GBITS != 0 {
                    *new &= !((clr << 3) & c.bits);
                }
                if c.flags & OBITS != 0 {
                    *new &= !(clr & c.bits);
                }
            }
            if c.flags & SET != 0 {
                if c.flags & UBITS != 0 {
                    *new |= (value << 6) & c.bits;
                }
                if c.flags & GBITS != 0 {
                    *new |= (value << 3) & c.bits;
                }
                if c.flags & OBITS != 0 {
                    *new |= value & c.bits;
                }
            }
        };
        match c.op {
            b'u' => {
                let v = (new & RWXU) >> 6;
                copy(&mut new, v)
            }
            b'g' => {
                let v = (new & RWXG) >> 3;
                copy(&mut new, v)
            }
            b'o' => {
                let v = new & RWXO;
                copy(&mut new, v)
            }
            b'+' => new |= c.bits,
            b'-' => new &= !c.bits,
            b'X' if omode & X_ALL != 0 || is_dir => new |= c.bits,
            _ => {}
        }
    }
    new & 0o7777
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ap(s: &str, mode: u32, dir: bool) -> u32 {
        Chmod::parse(s).unwrap().apply(mode, dir)
    }

    #[test]
    fn octal_replaces_all_bits() {
        assert_eq!(ap("755", 0o600, false), 0o755);
        assert_eq!(ap("4755", 0o600, false), 0o4755);
        assert!(Chmod::parse("10000").is_err());
        assert!(Chmod::parse("9").is_err());
    }

    #[test]
    fn symbolic_like_chmod() {
        assert_eq!(ap("+x", 0o644, false), 0o755);
        assert_eq!(ap("u+x,go-w", 0o666, false), 0o744);
        assert_eq!(ap("a=rX", 0o640, false), 0o444);
        assert_eq!(ap("a=rX", 0o740, false), 0o555);
        assert_eq!(ap("a=rX", 0o700, true), 0o555);
        assert_eq!(ap("u=rwX,go=rX", 0o600, true), 0o755);
        assert_eq!(ap("u=rwX,go=rX", 0o600, false), 0o644);
        assert_eq!(ap("g=u", 0o640, false), 0o660);
        assert_eq!(ap("o=", 0o777, false), 0o770);
        assert_eq!(ap("g+s", 0o755, true), 0o2755);
        assert_eq!(ap("o+t", 0o755, true), 0o755);
        assert_eq!(ap("+t", 0o755, true), 0o1755);
        assert_eq!(ap("u+r-w", 0o200, false), 0o400);
        for bad in ["", "x", "u+q", "u", "a+r,", "z+x"] {
            assert!(Chmod::parse(bad).is_err(), "{bad}");
        }
    }
}
