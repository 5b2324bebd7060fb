from pager.cli import main

raise SystemExit(main())
