import JSONKit
import Testing

@testable import Inspect

/// router1 as `dump --json` writes it (NamespaceView.json, IPJSON), with the fields tests change as
/// properties: e0 is a veth whose peer is e0 in web.
private struct Router {
    var reference = "router1"
    var inode = 4026532300
    var ifindex = 2
    var mtu = 1500
    var operstate = "UP"
    var up = true
    var master: String?
    var peerName = "e0"
    var peerIfindex = 7
    var peerNamespace = "web"
    var rxBytes = 1000
    var addresses = [
        #"{"family":"inet","local":"10.0.1.1","prefixlen":24,"scope":"global","label":"e0","valid_life_time":4294967295,"preferred_life_time":4294967295}"#,
        #"{"family":"inet6","local":"fe80::1","prefixlen":64,"scope":"link","valid_life_time":4294967295,"preferred_life_time":4294967295}"#,
    ]
    var routes = [
        #"{"dst":"10.0.1.0/24","dev":"e0","protocol":"kernel","scope":"link","prefsrc":"10.0.1.1","flags":[]}"#,
        #"{"dst":"10.0.3.0/24","gateway":"10.0.1.2","dev":"e0","protocol":"static","flags":[]}"#,
        #"{"dst":"fe80::/64","dev":"e0","protocol":"kernel","metric":256,"flags":[],"pref":"medium"}"#,
        #"{"type":"local","dst":"10.0.1.1","dev":"e0","table":"local","protocol":"kernel","scope":"host","prefsrc":"10.0.1.1","flags":[]}"#,
    ]
    var neighbours = [#"{"dst":"10.0.1.2","dev":"e0","lladdr":"02:00:00:00:02:01","state":["REACHABLE"]}"#]

    var json: String {
        let flags = up ? #"["BROADCAST","MULTICAST","UP","LOWER_UP"]"# : #"["BROADCAST","MULTICAST"]"#
        let masterMember = master.map { #""master":"\#($0)","# } ?? ""
        let lo = #"{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue","operstate":"UNKNOWN","link_type":"loopback","address":"00:00:00:00:00:00"}"#
        let e0 = """
            {"ifindex":\(ifindex),"ifname":"e0","flags":\(flags),"mtu":\(mtu),"qdisc":"noqueue",\(masterMember)\
            "operstate":"\(operstate)","link_type":"ether","address":"02:00:00:00:01:01","broadcast":"ff:ff:ff:ff:ff:ff",\
            "link_netnsid":0,"linkinfo":{"info_kind":"veth"},\
            "stats64":{"rx":{"bytes":\(rxBytes),"packets":10},"tx":{"bytes":500,"packets":5}},\
            "peer":{"ifname":"\(peerName)","ifindex":\(peerIfindex),"netns":"\(peerNamespace)","ns":4026532400}}
            """
        return """
            {"namespace":{"reference":"\(reference)","ns":\(inode),"cookie":4096,"names":["\(reference)"],"pids":[]},\
            "links":[\(lo),\(e0)],\
            "addrs":[{"ifindex":\(ifindex),"ifname":"e0","addr_info":[\(addresses.joined(separator: ","))]}],\
            "routes":[\(routes.joined(separator: ","))],"neigh":[\(neighbours.joined(separator: ","))]}
            """
    }
}

/// web, at the other end of router1's e0, as (key, body).
private func webNamespace(reference: String = "web", peerInode: Int = 4026532300) -> (String, String) {
    (reference, """
        {"namespace":{"reference":"\(reference)","ns":4026532400,"names":["\(reference)"],"pids":[]},\
        "links":[{"ifindex":7,"ifname":"e0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,\
        "operstate":"UP","link_type":"ether","address":"02:00:00:00:02:01","link_netnsid":0,"linkinfo":{"info_kind":"veth"},\
        "peer":{"ifname":"e0","ifindex":2,"netns":"router1","ns":\(peerInode)}}]}
        """)
}

private func snapshot(_ namespaces: [(String, String)]) throws -> JSON {
    let members = namespaces.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",")
    return try JSON.parse("""
        {"format":"nsinspect-snapshot","version":1,"taken":"2026-12-06T05:00:00Z","census":[],"namespaces":{\(members)}}
        """)
}

private func snapshot(_ router: Router, web: (String, String) = webNamespace()) throws -> JSON {
    try snapshot([(router.reference, router.json), web])
}

private func diff(_ a: Router, _ b: Router, _ options: DiffOptions = DiffOptions()) throws -> SnapshotDiff {
    try SnapshotDiff.compare(snapshot(a), snapshot(b), options: options)
}

/// The entries of the one namespace that changed; an issue if any other did.
private func entries(_ diff: SnapshotDiff) -> [SnapshotDiff.Entry] {
    #expect(diff.namespaces.count == 1)
    return diff.namespaces.first?.entries ?? []
}

private func entry(_ object: SnapshotDiff.ObjectKind, _ action: SnapshotDiff.Action, _ identity: String,
                   _ fields: [SnapshotDiff.FieldChange] = []) -> SnapshotDiff.Entry {
    SnapshotDiff.Entry(object: object, action: action, identity: identity, fields: fields)
}

private func field(_ name: String, _ old: String?, _ new: String?) -> SnapshotDiff.FieldChange {
    SnapshotDiff.FieldChange(field: name, old: old, new: new)
}

/// The error `compare` throws, nil when it compares.
private func refusal(_ a: JSON, _ b: JSON) -> SnapshotError? {
    do throws(SnapshotError) {
        _ = try SnapshotDiff.compare(a, b, options: DiffOptions())
        return nil
    } catch {
        return error
    }
}

@Suite("snapshot diff")
struct SnapshotDiffTests {
    @Test func identicalSnapshotsHaveNoDifferences() throws {
        let d = try diff(Router(), Router())
        #expect(d.isEmpty)
        #expect(d.text() == "")
        #expect(d.json() == .array([]))
    }

    @Test func anAddedAddressIsOneEntryAndItsLocalTableRouteNone() throws {
        var b = Router()
        b.addresses.append(#"{"family":"inet","local":"10.0.9.1","prefixlen":24,"scope":"global"}"#)
        b.routes.append(#"{"type":"local","dst":"10.0.9.1","dev":"e0","table":"local","protocol":"kernel","scope":"host","prefsrc":"10.0.9.1","flags":[]}"#)
        let d = try diff(Router(), b)
        #expect(entries(d) == [entry(.address, .added, "10.0.9.1/24 on e0")])
        #expect(d.text() == "router1 (ino 4026532300)\n  + address 10.0.9.1/24 on e0\n")
    }

    @Test func aRemovedRouteIsWrittenWhole() throws {
        var b = Router()
        b.routes.remove(at: 1)
        let d = try diff(Router(), b)
        #expect(entries(d) == [entry(.route, .removed, "10.0.3.0/24 via 10.0.1.2 dev e0 table main")])
        #expect(d.text() == "router1 (ino 4026532300)\n  - route 10.0.3.0/24 via 10.0.1.2 dev e0 table main\n")
    }

    @Test func aNewGatewayIsOneChangedRoute() throws {
        var b = Router()
        b.routes[1] = #"{"dst":"10.0.3.0/24","gateway":"10.0.1.3","dev":"e0","protocol":"static","flags":[]}"#
        let d = try diff(Router(), b)
        #expect(entries(d) == [entry(.route, .changed, "10.0.3.0/24 table main", [field("gateway", "10.0.1.2", "10.0.1.3")])])
    }

    @Test func aNeighbourStateAndMACChangeInOneEntry() throws {
        var b = Router()
        b.neighbours = [#"{"dst":"10.0.1.2","dev":"e0","lladdr":"02:00:00:00:02:02","state":["STALE"]}"#]
        let d = try diff(Router(), b)
        #expect(entries(d) == [entry(.neighbour, .changed, "10.0.1.2 dev e0", [
            field("lladdr", "02:00:00:00:02:01", "02:00:00:00:02:02"), field("state", "REACHABLE", "STALE"),
        ])])
        #expect(d.text().hasSuffix("\n  ~ neighbour 10.0.1.2 dev e0: lladdr 02:00:00:00:02:01 → 02:00:00:00:02:02, state REACHABLE → STALE\n"))
    }

    @Test func neighboursAppearAndDisappear() throws {
        var b = Router()
        b.neighbours = [#"{"dst":"10.0.1.3","dev":"e0","lladdr":"02:00:00:00:03:01","state":["REACHABLE"]}"#]
        let d = try diff(Router(), b)
        #expect(entries(d) == [
            entry(.neighbour, .added, "10.0.1.3 dev e0 lladdr 02:00:00:00:03:01"),
            entry(.neighbour, .removed, "10.0.1.2 dev e0 lladdr 02:00:00:00:02:01"),
        ])
    }

    @Test func linkMTUAndStateChangeInOneEntry() throws {
        var b = Router()
        b.mtu = 9000
        b.operstate = "DOWN"
        b.up = false
        let d = try diff(Router(), b)
        #expect(entries(d) == [entry(.link, .changed, "e0", [
            field("mtu", "1500", "9000"), field("state", "UP", "DOWN"), field("admin", "up", "down"),
        ])])
        #expect(d.text() == "router1 (ino 4026532300)\n  ~ link e0: mtu 1500 → 9000, state UP → DOWN, admin up → down\n")
    }

    @Test func linkMasterAndPeerChanges() throws {
        var b = Router()
        b.master = "br0"
        b.peerName = "e1"
        let d = try diff(Router(), b)
        #expect(entries(d) == [entry(.link, .changed, "e0", [field("master", nil, "br0"), field("peer", "e0 in web", "e1 in web")])])
    }

    @Test func namespacesAppearAndDisappear() throws {
        let old = ("old", #"{"namespace":{"reference":"old","ns":4026532500,"names":["old"],"pids":[]},"links":[]}"#)
        let a = try snapshot([("router1", Router().json), old])
        let b = try snapshot([("router1", Router().json), webNamespace()])
        let d = try SnapshotDiff.compare(a, b, options: DiffOptions())
        #expect(d.namespaces.map(\.change) == [.appeared, .disappeared])
        #expect(d.text() == "+ namespace web (ino 4026532400)\n- namespace old (ino 4026532500)\n")
        #expect(d.json().serialized() == """
            [{"namespace":"web","ns":4026532400,"change":"appeared","changes":[]},\
            {"namespace":"old","ns":4026532500,"change":"disappeared","changes":[]}]
            """)
    }

    /// web renamed web2 keeps its inode: it is matched, its new name is the one change, and router1's peer
    /// "e0 in web2" is the same peer as "e0 in web".
    @Test func aRenamedNamespaceIsMatchedByInode() throws {
        var b = Router()
        b.peerNamespace = "web2"
        let d = try SnapshotDiff.compare(snapshot(Router()), snapshot(b, web: webNamespace(reference: "web2")), options: DiffOptions())
        #expect(d.namespaces.map(\.label) == ["web2"])
        #expect(d.namespaces.first?.change == .changed)
        #expect(d.namespaces.first?.entries == [entry(.namespace, .changed, "web2", [field("names", "web", "web2")])])
    }

    /// router1 recreated (a new inode) while its old inode went to a new namespace r9: names win.
    @Test func aRecreatedNamespaceIsMatchedByNameBeforeInode() throws {
        var recreated = Router()
        recreated.inode = 4026532600
        let r9 = ("r9", #"{"namespace":{"reference":"r9","ns":4026532300,"names":["r9"],"pids":[]},"links":[]}"#)
        let a = try snapshot(Router())
        let b = try snapshot([(recreated.reference, recreated.json), webNamespace(peerInode: 4026532600), r9])
        let d = try SnapshotDiff.compare(a, b, options: DiffOptions())
        #expect(d.namespaces.map(\.label) == ["r9"])
        #expect(d.namespaces.map(\.change) == [.appeared])
        let v = try SnapshotDiff.compare(a, b, options: DiffOptions(includeVolatile: true))
        #expect(v.namespaces.map(\.label) == ["router1", "r9"])
        #expect(v.namespaces.first?.entries == [entry(.namespace, .changed, "router1", [field("ns", "4026532300", "4026532600")])])
    }

    @Test func renumberingAndCountersAreIgnoredUnlessAsked() throws {
        var b = Router()
        b.ifindex = 12
        b.peerIfindex = 8
        b.rxBytes = 2000
        #expect(try diff(Router(), b).isEmpty)
        let v = try diff(Router(), b, DiffOptions(includeVolatile: true))
        #expect(entries(v) == [entry(.link, .changed, "e0", [
            field("ifindex", "2", "12"), field("peer.ifindex", "7", "8"), field("stats64.rx.bytes", "1000", "2000"),
        ])])
    }

    @Test func linkLocalIsIgnoredUnlessAsked() throws {
        var b = Router()
        b.addresses[1] = #"{"family":"inet6","local":"fe80::2","prefixlen":64,"scope":"link","valid_life_time":4294967295,"preferred_life_time":4294967295}"#
        b.neighbours.append(#"{"dst":"fe80::5","dev":"e0","lladdr":"02:00:00:00:02:05","router":null,"state":["STALE"]}"#)
        #expect(try diff(Router(), b).isEmpty)
        let d = try diff(Router(), b, DiffOptions(includeLinkLocal: true))
        #expect(entries(d) == [
            entry(.address, .added, "fe80::2/64 on e0"), entry(.address, .removed, "fe80::1/64 on e0"),
            entry(.neighbour, .added, "fe80::5 dev e0 lladdr 02:00:00:00:02:05"),
        ])
    }

    /// The kernel's own NOARP entries for the multicast groups a link joins appear seconds after it comes
    /// up (MLD timers): noise unless volatile fields are asked for; a unicast NOARP entry still counts.
    @Test func multicastNoARPNeighboursAreVolatile() throws {
        var b = Router()
        b.neighbours.append(#"{"dst":"ff02::1:ff00:1","dev":"e0","lladdr":"33:33:ff:00:00:01","state":["NOARP"]}"#)
        b.neighbours.append(#"{"dst":"224.0.0.22","dev":"e0","lladdr":"01:00:5e:00:00:16","state":["NOARP"]}"#)
        #expect(try diff(Router(), b).isEmpty)
        #expect(entries(try diff(Router(), b, DiffOptions(includeVolatile: true))).count == 2)
        b.neighbours.append(#"{"dst":"10.0.1.9","dev":"e0","lladdr":"02:00:00:00:09:01","state":["NOARP"]}"#)
        #expect(entries(try diff(Router(), b)) == [entry(.neighbour, .added, "10.0.1.9 dev e0 lladdr 02:00:00:00:09:01")])
    }

    @Test func linksComeFirstThenAddressesRoutesAndNeighbours() throws {
        var b = Router()
        b.neighbours = []
        b.routes.remove(at: 1)
        b.addresses.append(#"{"family":"inet","local":"10.0.9.1","prefixlen":24,"scope":"global"}"#)
        b.mtu = 1400
        let d = try diff(Router(), b)
        #expect(entries(d).map(\.object) == [.link, .address, .route, .neighbour])
        #expect(entries(d).map(\.action) == [.changed, .added, .removed, .removed])
    }

    @Test func jsonGivesTheFieldsOfAChangedObject() throws {
        var b = Router()
        b.mtu = 9000
        let d = try diff(Router(), b)
        #expect(d.json().serialized() == """
            [{"namespace":"router1","ns":4026532300,"change":"changed","changes":[{"object":"link","action":"changed",\
            "identity":"e0","fields":[{"field":"mtu","old":"1500","new":"9000"}]}]}]
            """)
    }

    @Test func aDocumentWithoutFormatOrOfVersion2IsRefused() throws {
        let good = try snapshot(Router())
        let noFormat = try JSON.parse(#"{"version":1,"namespaces":{}}"#)
        let version2 = try JSON.parse(#"{"format":"nsinspect-snapshot","version":2,"namespaces":{}}"#)
        #expect(refusal(good, good) == nil)
        #expect(refusal(noFormat, good) == SnapshotError(document: .first, reason: .notASnapshot(format: nil)))
        #expect(refusal(good, version2) == SnapshotError(document: .second, reason: .unsupportedVersion("2")))
        #expect(refusal(good, version2)?.description == "second snapshot: version 2 is not one this nsinspect reads (1)")
    }

    // MARK: Against a declaration (lab status)

    /// A declaration of router1 written as LabDeclaration writes one: only what a lab file states.
    private func declaration(_ routes: [String], all: Bool = true, mtu: String = "") throws -> JSON {
        try snapshot([("router1", """
            {"namespace":{"reference":"router1","names":["router1"]},"declares_all":\(all),\
            "links":[{"ifname":"lo"},{"ifname":"e0","flags":["UP"],\(mtu)"linkinfo":{"info_kind":"veth"},\
            "peer":{"ifname":"e0","netns":"web"}}],\
            "addrs":[{"ifname":"e0","addr_info":[{"family":"inet","local":"10.0.1.1","prefixlen":24}]}],\
            "routes":[\(routes.joined(separator: ","))]}
            """), ("web", #"{"namespace":{"reference":"web","names":["web"]},"declares_all":true,"links":[{"ifname":"e0"}]}"#)])
    }

    @Test func unsetMembersOfADeclarationMatchAnything() throws {
        let declared = try declaration([#"{"dst":"10.0.3.0/24","family":"inet","gateway":"10.0.1.2"}"#])
        var live = Router()
        live.mtu = 9000
        // The kernel's IPv6 link-local and local-table routes and the link-local address are not the file's.
        let d = try SnapshotDiff.compare(declared, snapshot(live), options: DiffOptions(declared: true))
        #expect(d.isEmpty, "\(d.text())")
        let pinned = try declaration([#"{"dst":"10.0.3.0/24","family":"inet","gateway":"10.0.1.2"}"#], mtu: #""mtu":1500,"#)
        let e = try SnapshotDiff.compare(pinned, snapshot(live), options: DiffOptions(declared: true))
        #expect(entries(e) == [entry(.link, .changed, "e0", [field("mtu", "1500", "9000")])])
    }

    @Test func declaredRoutesAreFoundByWhatTheyStateAndTheRestIsExtra() throws {
        let declared = try declaration([
            #"{"dst":"10.0.3.0/24","family":"inet","gateway":"10.0.1.9"}"#,
            #"{"dst":"10.0.4.0/24","family":"inet","gateway":"10.0.1.2","metric":5}"#,
        ])
        var live = Router()
        live.routes.append(#"{"dst":"10.0.4.0/24","dev":"e0","protocol":"static","metric":5,"nexthops":[{"gateway":"10.0.1.3","dev":"e0"},{"gateway":"10.0.1.2","dev":"e0"}],"flags":[]}"#)
        live.routes.append(#"{"dst":"10.0.5.0/24","gateway":"10.0.1.2","dev":"e0","flags":[]}"#)
        live.addresses.append(#"{"family":"inet","local":"10.0.1.7","prefixlen":24,"scope":"global"}"#)
        let d = try SnapshotDiff.compare(declared, snapshot(live), options: DiffOptions(declared: true))
        #expect(entries(d) == [
            entry(.address, .added, "10.0.1.7/24 on e0"),
            // Found by destination, with another gateway: one changed route.
            entry(.route, .changed, "10.0.3.0/24 table main", [field("gateway", "10.0.1.9", "10.0.1.2")]),
            entry(.route, .added, "10.0.5.0/24 via 10.0.1.2 dev e0 table main"),
        ])
        // Where the file does not declare everything (the host), nothing undeclared is extra.
        let host = try declaration([#"{"dst":"10.0.3.0/24","family":"inet","gateway":"10.0.1.2"}"#], all: false)
        let h = try SnapshotDiff.compare(host, snapshot(live), options: DiffOptions(declared: true))
        #expect(entries(h) == [entry(.address, .added, "10.0.1.7/24 on e0")])
    }
}
