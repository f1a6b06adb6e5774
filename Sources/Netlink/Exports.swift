// Addresses are values every layer shares (Netlink, Probes, Lab); they live in the leaf module
// NetAddress so Probes does not depend on Netlink (docs/design.md). Users of Netlink get them too.
@_exported import NetAddress
