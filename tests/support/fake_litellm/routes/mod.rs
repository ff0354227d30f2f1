//! One module per route the fake serves.

mod block;
mod delete;
mod generate;
mod info;
mod list;
mod models;
mod teams;
mod update;

pub(crate) use block::*;
pub(crate) use delete::*;
pub(crate) use generate::*;
pub(crate) use info::*;
pub(crate) use list::*;
pub(crate) use models::*;
pub(crate) use teams::*;
pub(crate) use update::*;
