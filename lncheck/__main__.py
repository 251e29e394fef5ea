from lncheck.cli import main

main()
