from dmig.native import main

raise SystemExit(main())
