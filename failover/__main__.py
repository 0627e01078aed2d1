from failover.cli import main

main()
