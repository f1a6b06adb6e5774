// swift-tools-version:6.0
// nsinspect: see ../shared/DESIGN.md §2 for the layout and the direction of dependencies.
import PackageDescription

let package = Package(
    name: "nsinspect",
    products: [
        .executable(name: "nsinspect", targets: ["nsinspect"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // System libraries, found by pkg-config (scripts/setup installs the -dev packages).
        .systemLibrary(name: "CMnl", pkgConfig: "libmnl", providers: [.apt(["libmnl-dev"])]),
        .systemLibrary(name: "CBPF", pkgConfig: "libbpf", providers: [.apt(["libbpf-dev"])]),
        // The one hand-written C shim: syscalls libc lacks, variadic ioctls, the fork+setns+exec child.
        .target(name: "CShim"),

        .target(name: "JSONKit"),
        // IP, prefix and MAC address values, shared by every layer.
        .target(name: "NetAddress"),
        .target(name: "ProcNS", dependencies: ["CShim", "JSONKit"]),
        .target(name: "Netlink", dependencies: ["ProcNS", "NetAddress", "CShim", "CMnl", "JSONKit"]),
        // Probes embeds the objects BPFPlugin compiles from bpf/*.bpf.c (bpf/ stays outside Sources/).
        .target(name: "Probes", dependencies: ["ProcNS", "NetAddress", "CShim", "CBPF"], plugins: ["BPFPlugin"]),
        .target(name: "Lab", dependencies: ["Netlink", "ProcNS", .product(name: "Yams", package: "Yams")]),
        // The engine above the kernel layers: census facts, path contexts, tracing sessions, NAT checks,
        // conntrack watching, stopping on a signal. The command line parses arguments, calls it, renders.
        .target(name: "Inspect", dependencies: ["Lab", "Probes", "Netlink", "NetAddress", "ProcNS", "CShim", "JSONKit"]),
        .executableTarget(
            name: "nsinspect",
            dependencies: [
                "Inspect", "Lab", "Probes", "Netlink", "NetAddress", "ProcNS", "JSONKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        .plugin(name: "BPFPlugin", capability: .buildTool()),

        // Helpers shared by the test targets: running commands, scratch namespaces that clean up.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "JSONKitTests", dependencies: ["JSONKit"]),
        .testTarget(name: "NetAddressTests", dependencies: ["NetAddress", "TestSupport"]),
        .testTarget(name: "ProcNSTests", dependencies: ["ProcNS", "CShim", "JSONKit", "TestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(name: "EndToEndTests", dependencies: ["TestSupport"]),
        .testTarget(name: "NetlinkTests", dependencies: ["Netlink", "ProcNS", "JSONKit", "TestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(name: "LabTests", dependencies: ["Lab", "TestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(name: "ProbesTests", dependencies: ["Probes", "ProcNS", "CShim"]),
        .testTarget(name: "InspectTests", dependencies: ["Inspect", "Probes", "Netlink", "ProcNS", "TestSupport"]),
    ]
)
