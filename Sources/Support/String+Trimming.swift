extension StringProtocol {
    /// The text without leading and trailing white space (spaces, tabs, line ends).
    public func trimmingWhitespace() -> String {
        String(self.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}
