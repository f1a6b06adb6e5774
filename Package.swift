// swift-tools-version:6.1
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
        // `serve`'s HTTP server (docs/serve.md says why this one). No traits: without FullFoundation it
        // uses FoundationEssentials only, and swift-configuration is not needed.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
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
        // `nsinspect serve`: the HTTP server, its page (Sources/Serve/Assets and Debian's d3, embedded by
        // AssetPlugin), Server-Sent Events from `watch`, Prometheus metrics. It answers the API by running
        // this binary's own commands, so every answer is what the command line prints.
        .target(
            name: "Serve",
            dependencies: ["ProcNS", "CShim", "JSONKit", .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "HTTPTypes", package: "swift-http-types"),
                           .product(name: "Logging", package: "swift-log"),
                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            exclude: ["Assets"],
            plugins: ["AssetPlugin"]
        ),
        .executableTarget(
            name: "nsinspect",
            dependencies: [
                "Inspect", "Lab", "Probes", "Netlink", "NetAddress", "ProcNS", "JSONKit", "Serve",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        .plugin(name: "BPFPlugin", capability: .buildTool()),
        .plugin(name: "AssetPlugin", capability: .buildTool()),

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
        .testTarget(name: "ServeTests", dependencies: ["Serve", "JSONKit", "TestSupport"]),
    ]
)
