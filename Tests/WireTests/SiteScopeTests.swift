import Testing
import Wire

@Suite struct SiteScopeTests {
    @Test func namesMatchExactlyAndStarsMatchAnyRun() throws {
        let kiosk = try SiteScope(["branch-042"])
        #expect(kiosk.allows("branch-042"))
        #expect(!kiosk.allows("branch-0420"))
        #expect(!kiosk.allows("branch-04"))
        #expect(!kiosk.allows(""))

        let backend = try SiteScope(["branch-*", "web-eu", "*-outlet"])
        for site in ["branch-", "branch-7", "branch-*x", "web-eu", "north-outlet", "-outlet"] {
            #expect(backend.allows(site), "\(site)")
        }
        for site in ["web-us", "branch", "outlet-7", "xbranch-7", ""] {
            #expect(!backend.allows(site), "\(site)")
        }
        #expect(try SiteScope(["a*b*c"]).allows("aXXbYYbZZc"))
        #expect(!(try SiteScope(["a*b*c"])).allows("aXXcYYb"))
        #expect(SiteScope.any.allows(""))
        #expect(SiteScope.any.allows("anything at all"))
        #expect(try SiteScope(["**"]).allowsAnySite == false)
        #expect(try SiteScope(["**"]).allows("x"))
    }

    @Test func patternsAreCheckedAndRoundTripThroughTheStoredForm() throws {
        #expect(throws: WireError.self) { try SiteScope([]) }
        #expect(throws: WireError.self) { try SiteScope([""]) }
        #expect(throws: WireError.self) { try SiteScope(["bad\nsite"]) }
        #expect(throws: WireError.self) { try SiteScope([String(repeating: "s", count: 65)]) }
        #expect(throws: WireError.self) { try SiteScope((0...256).map { "site-\($0)" }) }
        let scope = try SiteScope(["b", "a*", "b"])
        #expect(scope.patterns == ["b", "a*"])
        #expect(try SiteScope(storedForm: scope.storedForm) == scope)
    }
}
